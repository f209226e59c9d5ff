#!/usr/bin/env node
// A real third-party MCP client for the product tests: the official TypeScript SDK
// (@modelcontextprotocol/sdk, pinned in package.json) over Streamable HTTP.
//
// usage: node ts-client.mjs <url> list
//        node ts-client.mjs <url> call <tool-name> [<json-args>] [--progress]
// env:   MCP_TOKEN  if set, sent as "Authorization: Bearer <MCP_TOKEN>" on every request
//
// Output (one JSON document on stdout):
//   list             {"protocolVersion": "...", "tools": [<raw tool objects>]}
//   call             the raw CallToolResult; with --progress also "progressCount": n and
//                    "progress": [<params of each notifications/progress>]
//   any failure      {"error": {"code": <JSON-RPC or HTTP code>, "message": "...", "status": <HTTP status|null>}}
//                    and exit code 3. Usage errors exit 2.
// The SDK speaks the handshake era only (initialize; negotiates up to 2025-11-25).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

function usage() {
  process.stderr.write('usage: node ts-client.mjs <url> list | call <tool-name> [<json-args>] [--progress]\n');
  process.exit(2);
}

const argv = process.argv.slice(2);
const progress = argv.includes('--progress');
const positional = argv.filter((a) => a !== '--progress');
const [url, command, ...rest] = positional;
if (!url || !command) usage();
if (command !== 'list' && command !== 'call') usage();
if (command === 'call' && !rest[0]) usage();

let callArgs = {};
if (command === 'call' && rest[1] !== undefined) {
  try {
    callArgs = JSON.parse(rest[1]);
  } catch (e) {
    process.stderr.write(`invalid JSON arguments: ${e.message}\n`);
    process.exit(2);
  }
}

// Turn whatever the SDK threw into {code, message, status}.
function describe(err) {
  if (err instanceof McpError) {
    return { code: err.code, message: err.message, status: null, ...(err.data !== undefined ? { data: err.data } : {}) };
  }
  if (err instanceof StreamableHTTPError) {
    // code = HTTP status; the message carries the response body, often a JSON-RPC error.
    const out = { code: err.code, message: err.message, status: err.code > 0 ? err.code : null };
    const m = /Error POSTing to endpoint: ([\s\S]*)$/.exec(err.message);
    if (m) {
      try {
        const body = JSON.parse(m[1]);
        if (body && body.error && typeof body.error === 'object') {
          out.code = body.error.code;
          out.message = body.error.message;
          if (body.error.data !== undefined) out.data = body.error.data;
        }
      } catch {
        /* not JSON: keep the raw text */
      }
    }
    return out;
  }
  const status = typeof err?.status === 'number' ? err.status : null;
  return { code: err?.code ?? null, message: String(err?.message ?? err), status };
}

const headers = {};
if (process.env.MCP_TOKEN) headers.Authorization = `Bearer ${process.env.MCP_TOKEN}`;
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: 'open-cli-product-test-ts', version: '1.0.0' }, { capabilities: {} });
// The SDK reports asynchronous transport problems (e.g. a failing optional GET stream) here;
// they are not fatal for a request/response exchange, so only log them.
client.onerror = (e) => process.stderr.write(`[transport] ${e?.message ?? e}\n`);

let exitCode = 0;
try {
  await client.connect(transport);
  if (command === 'list') {
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    process.stdout.write(JSON.stringify({ protocolVersion: transport.protocolVersion ?? null, tools }) + '\n');
  } else {
    const notes = [];
    const options = progress ? { onprogress: (p) => notes.push(p) } : undefined;
    const result = await client.callTool({ name: rest[0], arguments: callArgs }, undefined, options);
    const out = progress ? { ...result, progressCount: notes.length, progress: notes } : result;
    process.stdout.write(JSON.stringify(out) + '\n');
  }
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err) }) + '\n');
  exitCode = 3;
} finally {
  await client.close().catch(() => {});
}
process.exit(exitCode);
