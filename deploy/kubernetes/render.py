#!/usr/bin/env python3
"""Render a manifest of deploy/kubernetes/ with an overlay: the values to change, nothing else.

    deploy/kubernetes/render.py sidecar.yaml [OVERLAY_DIR] > rendered.yaml
    deploy/kubernetes/render.py --list sidecar.yaml       # the values and their defaults

The manifests are ready to apply as they are. The lines an installation changes end with a
marker comment, `# @name`:

    image: registry.example.com/open-cli-toolbox:0.1.0  # @image
    .cli.json: |  # @config

An overlay is a directory with `values.env`: one `name=value` per line (`#` comments and blank
lines allowed). A value replaces the YAML value of the line marked `# @name` (written as
given: quote it as YAML needs). A value `@FILE` replaces a block (`key: |  # @name`) with the
contents of FILE, relative to the overlay directory (e.g. `config=@cli.json`). A marked line
without a value keeps its default. A name that marks no line is an error (a typo must not pass
silently), as is a block value that is not `@FILE`, or a FILE that is missing.

Standard library only: no YAML parser is needed, since only marked lines change.
"""

import re
import sys
from pathlib import Path

MARKER = re.compile(r"^(?P<head>\s*(?:- )?[^#\n]*?:)(?P<sep>\s+)(?P<value>.*?)(?P<mark>\s+# @(?P<name>[A-Za-z][A-Za-z0-9_-]*))\s*$")


def fail(message):
    print(f"render: {message}", file=sys.stderr)
    sys.exit(2)


def markers(lines):
    """name -> (line index, default value) of every marked line."""
    found = {}
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if m:
            name = m.group("name")
            if name in found:
                fail(f"line {i + 1}: `@{name}` marks two lines")
            found[name] = (i, m.group("value"))
    return found


def read_values(overlay):
    path = overlay / "values.env"
    if not path.is_file():
        fail(f"{path}: no such file (an overlay is a directory with values.env)")
    values = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            fail(f"{path}:{n}: expected name=value, found `{line}`")
        name, value = line.split("=", 1)
        name = name.strip()
        if name in values:
            fail(f"{path}:{n}: `{name}` is set twice")
        values[name] = (n, value.strip())
    return path, values


def block_end(lines, start):
    """The index after the last line of the block scalar whose header is lines[start]."""
    header_indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip()) <= header_indent:
            break
        end += 1
    # Trailing blank lines belong to what follows.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def render(base, overlay):
    lines = base.read_text().splitlines()
    marked = markers(lines)
    if overlay is None:
        return lines
    path, values = read_values(overlay)
    for name, (n, _) in values.items():
        if name not in marked:
            known = ", ".join(sorted(marked))
            fail(f"{path}:{n}: `{name}` is not a value of {base.name} (its values: {known})")
    # Bottom-up, so replacing a block does not move the lines of the markers above it.
    for name, (i, default) in sorted(marked.items(), key=lambda kv: -kv[1][0]):
        if name not in values:
            continue
        n, value = values[name]
        m = MARKER.match(lines[i])
        if default.startswith("|") or default.startswith(">"):
            if not value.startswith("@"):
                fail(f"{path}:{n}: `{name}` is a block; give a file: {name}=@FILE")
            source = overlay / value[1:]
            if not source.is_file():
                fail(f"{path}:{n}: {source}: no such file")
            end = block_end(lines, i)
            indent = " " * (len(lines[i]) - len(lines[i].lstrip()) + 2)
            body = [indent + l if l.strip() else "" for l in source.read_text().splitlines()]
            lines[i + 1 : end] = body
        else:
            if value.startswith("@"):
                fail(f"{path}:{n}: `{name}` is a single value, not a block")
            lines[i] = f"{m.group('head')}{m.group('sep')}{value}{m.group('mark')}"
    return lines


def main(argv):
    if argv[:1] == ["--list"] and len(argv) == 2:
        lines = Path(argv[1]).read_text().splitlines()
        for name, (_, default) in sorted(markers(lines).items()):
            print(f"{name}={default}")
        return
    if len(argv) not in (1, 2) or argv[0].startswith("-"):
        fail("usage: render.py MANIFEST [OVERLAY_DIR] | render.py --list MANIFEST")
    base = Path(argv[0])
    if not base.is_file():
        fail(f"{base}: no such file")
    overlay = Path(argv[1]) if len(argv) == 2 else None
    if overlay is not None and not overlay.is_dir():
        fail(f"{overlay}: not a directory")
    print("\n".join(render(base, overlay)))


if __name__ == "__main__":
    main(sys.argv[1:])
