"""A real third-party MCP client for the product tests: the official Python SDK (`mcp`, pinned in
requirements.txt) over Streamable HTTP.

usage: venv/bin/python py_client.py <url> list                                [--mode M]
       venv/bin/python py_client.py <url> call <tool-name> [<json-args>] [--progress] [--mode M]
       venv/bin/python py_client.py <url> oauth-list                          [--mode M]
  --mode legacy|2026-07-28|auto (default auto): legacy = initialize handshake (up to 2025-11-25),
         2026-07-28 = adopt the stateless revision directly, auto = try server/discover, fall back.
env:   MCP_TOKEN            list/call: if set, sent as "Authorization: Bearer <MCP_TOKEN>"
       OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_SCOPE (optional), OAUTH_ISSUER (optional)
                            oauth-list: the SDK's own OAuth flow. No token is sent first; on the 401
                            the SDK reads `WWW-Authenticate: Bearer resource_metadata=...` (RFC 9728),
                            fetches the protected resource metadata, discovers the authorization server
                            (RFC 8414 / OIDC discovery) and gets a token with the client credentials
                            grant (client_secret_basic, `resource` = the metadata's resource), then lists.

Output (one JSON document on stdout):
  list / oauth-list  {"protocolVersion": "...", "tools": [<raw tool objects, wire (camelCase) form>]}
                     oauth-list adds "oauth": {"authorizationServer", "resource", "scope", "tokenType"}
  call               the raw CallToolResult; with --progress also "progressCount": n and "progress": [...]
  any failure        {"error": {"code": ..., "message": "...", "status": <HTTP status of the failing
                     response, or null>}} and exit code 3. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


class MemoryTokenStorage:
    """In-memory TokenStorage for the SDK's OAuth providers (nothing is persisted)."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_unset=True)


def leaves(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for e in exc.exceptions:
            out.extend(leaves(e))
        return out
    return [exc]


def describe(exc: BaseException, status: int | None) -> dict[str, Any]:
    found = leaves(exc)
    err = next((e for e in found if isinstance(e, MCPError)), found[0])
    if isinstance(err, MCPError):
        out: dict[str, Any] = {"code": err.code, "message": err.message, "status": status}
        if err.data is not None:
            out["data"] = err.data
        return out
    if isinstance(err, httpx2.HTTPStatusError):
        status = err.response.status_code
    return {"code": None, "message": f"{type(err).__name__}: {err}", "status": status}


async def run(args: argparse.Namespace) -> int:
    last: dict[str, int | None] = {"status": None}

    async def on_response(response: httpx2.Response) -> None:
        # Status of the latest HTTP response: the SDK folds HTTP errors into JSON-RPC errors.
        last["status"] = response.status_code

    headers: dict[str, str] = {}
    auth = None
    storage = None
    if args.command == "oauth-list":
        from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

        client_id = os.environ.get("OAUTH_CLIENT_ID")
        client_secret = os.environ.get("OAUTH_CLIENT_SECRET")
        if not client_id or not client_secret:
            print("oauth-list needs OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET", file=sys.stderr)
            return 2
        storage = MemoryTokenStorage()
        with warnings.catch_warnings():
            # Omitting `issuer` is deprecated: the authorization server is then whatever the
            # protected resource metadata names, which is exactly what this flow is meant to test.
            warnings.simplefilter("ignore")
            auth = ClientCredentialsOAuthProvider(
                server_url=args.url,
                storage=storage,
                client_id=client_id,
                client_secret=client_secret,
                scope=os.environ.get("OAUTH_SCOPE") or None,
                issuer=os.environ.get("OAUTH_ISSUER") or None,
            )
    elif os.environ.get("MCP_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MCP_TOKEN']}"

    http_client = create_mcp_http_client(headers=headers or None)
    if auth is not None:
        http_client.auth = auth
    http_client.event_hooks["response"].append(on_response)

    out: dict[str, Any]
    try:
        async with http_client:
            transport = streamable_http_client(args.url, http_client=http_client)
            async with Client(transport, mode=args.mode) as client:
                if args.command in ("list", "oauth-list"):
                    tools: list[Any] = []
                    cursor = None
                    while True:
                        page = await client.list_tools(cursor=cursor)
                        tools.extend(dump(t) for t in page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    out = {"protocolVersion": client.protocol_version, "tools": tools}
                    if auth is not None:
                        ctx = auth.context
                        tok = storage.tokens if storage else None
                        out["oauth"] = {
                            "authorizationServer": str(ctx.oauth_metadata.issuer) if ctx.oauth_metadata else None,
                            "resource": str(ctx.protected_resource_metadata.resource)
                            if ctx.protected_resource_metadata
                            else None,
                            "scope": tok.scope if tok else None,
                            "tokenType": tok.token_type if tok else None,
                        }
                else:
                    notes: list[dict[str, Any]] = []

                    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                        note: dict[str, Any] = {"progress": progress}
                        if total is not None:
                            note["total"] = total
                        if message is not None:
                            note["message"] = message
                        notes.append(note)

                    result = await client.call_tool(
                        args.tool, args.arguments, progress_callback=on_progress if args.progress else None
                    )
                    out = dump(result)
                    if args.progress:
                        out["progressCount"] = len(notes)
                        out["progress"] = notes
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the error document
        if isinstance(exc, KeyboardInterrupt):
            raise
        status = last["status"] if last["status"] is not None and last["status"] >= 400 else None
        print(json.dumps({"error": describe(exc, status)}))
        return 3
    print(json.dumps(out))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description="MCP client (official Python SDK) for product tests")
    p.add_argument("url")
    p.add_argument("command", choices=["list", "call", "oauth-list"])
    p.add_argument("tool", nargs="?")
    p.add_argument("arguments", nargs="?", default="{}")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--mode", choices=["legacy", "2026-07-28", "auto"], default="auto")
    args = p.parse_args()
    if args.command == "call":
        if not args.tool:
            p.error("call needs a tool name")
        try:
            args.arguments = json.loads(args.arguments)
        except json.JSONDecodeError as e:
            p.error(f"invalid JSON arguments: {e}")
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
