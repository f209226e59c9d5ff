#!/usr/bin/env bash
# Assemble the runtime stage of deploy/container/Containerfile with buildah, without pulling a
# base image: the built binaries, the shared libraries they link (as `ldd` lists them) and a
# passwd/group entry for the non-root user, on an empty (`scratch`) image, with the same
# configuration (user, entrypoint, command, port, volumes, health check).
#   deploy/container/build.sh [IMAGE (default localhost/open-cli-toolbox:dev)]
# Env: BIN_DIR (default target/release) holds open-cli-toolbox and open-cli;
#      BUILDAH_ARGS (e.g. "--storage-driver vfs --root DIR --runroot DIR") for buildah.
# Prints the image ID. With a registry, `podman build -f deploy/container/Containerfile .`
# builds the same image from source instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-localhost/open-cli-toolbox:dev}
bin_dir=${BIN_DIR:-target/release}
read -r -a bargs <<< "${BUILDAH_ARGS:-}"
b() { buildah "${bargs[@]}" "$@"; }

for f in open-cli-toolbox open-cli; do
  [ -x "$bin_dir/$f" ] || { echo "error: $bin_dir/$f is missing (cargo build --release -p open-cli-proxy -p open-cli)" >&2; exit 2; }
done
ctr=$(b from --format docker scratch)
stage=$(mktemp -d)
trap 'b rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$stage"' EXIT
# Without debug information (a debug build's is most of its size).
for f in open-cli-toolbox open-cli; do
  strip --strip-debug -o "$stage/$f" "$bin_dir/$f"
  b copy --chmod 0755 "$ctr" "$stage/$f" "/$f" >/dev/null
done
# Every library either binary links, at the path the dynamic loader looks for it.
libs=$(ldd "$bin_dir/open-cli-toolbox" "$bin_dir/open-cli" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u)
for lib in $libs; do
  b copy "$ctr" "$(readlink -f "$lib")" "$lib" >/dev/null
done
# The system's trust anchors (as distroless carries them): HTTPS upstreams and providers.
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "error: $ca is missing (apt install ca-certificates)" >&2; exit 2; }
b copy --chmod 0644 "$ctr" "$ca" "$ca" >/dev/null
etc=$(mktemp -d)
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > "$etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$etc/group"
b copy "$ctr" "$etc/passwd" /etc/passwd >/dev/null
b copy "$ctr" "$etc/group" /etc/group >/dev/null
# The volumes' mount points, the state one owned by the user (a fresh volume inherits it).
mkdir -p "$etc/empty"
b copy --chmod 0755 "$ctr" "$etc/empty" /etc/open-cli >/dev/null
b copy --chown 65532:65532 --chmod 0700 "$ctr" "$etc/empty" /var/lib/open-cli >/dev/null
b copy --chmod 1777 "$ctr" "$etc/empty" /tmp >/dev/null
rm -rf "$etc"
b config \
  --user 65532:65532 \
  --port 8765 \
  --volume /etc/open-cli --volume /var/lib/open-cli \
  --entrypoint '["/open-cli-toolbox"]' \
  --cmd '--config /etc/open-cli/.cli.json --addr 0.0.0.0:8765 --state-dir /var/lib/open-cli --log-format json' \
  --healthcheck 'CMD /open-cli-toolbox probe --url http://127.0.0.1:8765/healthz' \
  --healthcheck-interval 10s --healthcheck-timeout 3s --healthcheck-start-period 60s \
  --label org.opencontainers.image.title=open-cli-toolbox \
  --label org.opencontainers.image.source=deploy/container/Containerfile \
  "$ctr"
b commit --quiet --format docker "$ctr" "$image"
