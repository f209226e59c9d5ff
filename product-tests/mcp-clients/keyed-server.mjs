// A streamable-HTTP MCP server, made with the MCP project's TypeScript SDK (McpServer and its
// StreamableHTTPServerTransport), that knows its callers by their key, in `X-Api-Key` or as
// `Authorization: Bearer <key>`, for the per-caller identity tests:
// KEYS='{"<key>": "<owner>", …}' PORT=<port> node keyed-server.mjs
// - a request without a known key is refused with 401;
// - a session belongs to the owner whose key started it: the same session with another key is
//   refused with 403, so a client that shared one session between callers would fail;
// - one tool, `whoami`, answers the owner of the key the call came with and its session;
// - one JSON line per request on stdout: {"method", "owner", "session"}.
// Prints `listening on http://127.0.0.1:<port>/mcp` when ready.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const keys = JSON.parse(process.env.KEYS || '{}');
const sessions = new Map(); // session ID -> {transport, owner}

/** The key a request came with (`X-Api-Key`, else a bearer `Authorization`). */
function keyOf(headers) {
  const bearer = /^Bearer (.+)$/.exec(headers?.authorization ?? '');
  return headers?.['x-api-key'] ?? bearer?.[1];
}

function server() {
  const s = new McpServer({ name: 'keyed', version: '1.0.0' });
  s.registerTool(
    'whoami',
    { description: 'The owner of the API key this call came with.', inputSchema: {}, annotations: { readOnlyHint: true } },
    async (_args, extra) => {
      const owner = keys[keyOf(extra.requestInfo?.headers)] ?? null;
      const answer = { owner, session: extra.sessionId ?? null };
      return { content: [{ type: 'text', text: JSON.stringify(answer) }], structuredContent: answer };
    },
  );
  return s;
}

const httpServer = http.createServer(async (req, res) => {
  const owner = keys[keyOf(req.headers)];
  const sid = req.headers['mcp-session-id'];
  console.log(JSON.stringify({ method: req.method, owner: owner ?? null, session: sid ?? null }));
  if (!owner) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":"unknown or missing key"}');
    return;
  }
  let entry = sid ? sessions.get(sid) : undefined;
  if (sid && !entry) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"no such session"}');
    return;
  }
  if (entry && entry.owner !== owner) {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(`{"error":"session ${sid} belongs to another caller"}`);
    return;
  }
  if (!entry) {
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => sessions.set(id, { transport, owner }),
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await server().connect(transport);
    entry = { transport, owner };
  }
  await entry.transport.handleRequest(req, res);
});
httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}/mcp`);
});
