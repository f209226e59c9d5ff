#!/usr/bin/env node
// Conformance fixture MCP server, built on the official TypeScript SDK (@modelcontextprotocol/sdk,
// pinned in package.json). It implements the tools, resources, prompts and completions that the
// server scenarios of @modelcontextprotocol/conformance call by name (the suite's own fixture,
// examples/servers/typescript/everything-server.ts, is not published to npm).
//
// usage:
//   node fixture.mjs [port]    streamable HTTP at http://127.0.0.1:<port>/mcp (port from argv[2] or
//                              env PORT, default 0 = any free port), stateful sessions (one McpServer
//                              per session); prints "listening <port>" on stdout when ready.
//   node fixture.mjs stdio     the same server over stdio.
//
// Zod is the SDK's own (peer) dependency, installed alongside it.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  isInitializeRequest,
} from '@modelcontextprotocol/sdk/types.js';

// 1x1 red pixel PNG.
const PNG_1X1 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
// Minimal WAV: RIFF header, PCM mono 8 kHz 8-bit, 4 samples of silence.
const WAV_MIN = Buffer.concat([
  Buffer.from('RIFF'), u32(36 + 4), Buffer.from('WAVE'),
  Buffer.from('fmt '), u32(16), u16(1), u16(1), u32(8000), u32(8000), u16(1), u16(8),
  Buffer.from('data'), u32(4), Buffer.from([128, 128, 128, 128]),
]).toString('base64');
function u32(n) { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }
function u16(n) { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The raw JSON Schema 2020-12 input schema the json-schema-2020-12 scenario expects verbatim.
const JSON_SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      $anchor: 'addressDef',
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
    },
  },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
};

const WATCHED = 'test://watched-resource';

function createServer() {
  const mcp = new McpServer(
    { name: 'open-cli-conformance-fixture', version: '1.0.0' },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
    },
  );
  const subscriptions = new Set();

  // ---- tools -------------------------------------------------------------------------------
  mcp.registerTool('test_simple_text', { description: 'Returns simple text content' }, async () => ({
    content: [{ type: 'text', text: 'This is a simple text response for testing.' }],
  }));

  mcp.registerTool('test_image_content', { description: 'Returns image content' }, async () => ({
    content: [{ type: 'image', data: PNG_1X1, mimeType: 'image/png' }],
  }));

  mcp.registerTool('test_audio_content', { description: 'Returns audio content' }, async () => ({
    content: [{ type: 'audio', data: WAV_MIN, mimeType: 'audio/wav' }],
  }));

  mcp.registerTool('test_embedded_resource', { description: 'Returns an embedded resource' }, async () => ({
    content: [
      {
        type: 'resource',
        resource: {
          uri: 'test://embedded-resource',
          mimeType: 'text/plain',
          text: 'This is an embedded resource content.',
        },
      },
    ],
  }));

  mcp.registerTool(
    'test_multiple_content_types',
    { description: 'Returns text, image and resource content' },
    async () => ({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG_1X1, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ test: 'data', value: 123 }),
          },
        },
      ],
    }),
  );

  const logThree = async (extra) => {
    const log = (data) =>
      extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'fixture', data } });
    await log('Tool execution started');
    await sleep(50);
    await log('Tool processing data');
    await sleep(50);
    await log('Tool execution completed');
    return { content: [{ type: 'text', text: 'Tool with logging executed successfully' }] };
  };
  mcp.registerTool('test_tool_with_logging', { description: 'Sends 3 info log messages while running' }, async (extra) =>
    logThree(extra),
  );
  mcp.registerTool('test_logging_tool', { description: 'Sends log messages while running' }, async (extra) =>
    logThree(extra),
  );

  mcp.registerTool('test_tool_with_progress', { description: 'Reports progress 0, 50, 100 of 100' }, async (extra) => {
    const token = extra._meta?.progressToken;
    for (const progress of [0, 50, 100]) {
      if (token !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress, total: 100, message: `Completed step ${progress}` },
        });
      }
      if (progress < 100) await sleep(50);
    }
    return { content: [{ type: 'text', text: String(token ?? 'no progress token') }] };
  });

  mcp.registerTool('test_error_handling', { description: 'Always fails' }, async () => {
    throw new Error('This tool intentionally returns an error for testing');
  });

  mcp.registerTool(
    'test_sampling',
    {
      description: 'Requests LLM sampling from the client',
      inputSchema: { prompt: z.string().describe('The prompt to send to the LLM') },
    },
    async ({ prompt }, extra) => {
      const result = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      const c = Array.isArray(result.content) ? result.content[0] : result.content;
      const text = c && c.type === 'text' ? c.text : JSON.stringify(c);
      return { content: [{ type: 'text', text: `LLM response: ${text}` }] };
    },
  );

  const elicit = (extra, params) => extra.sendRequest({ method: 'elicitation/create', params }, ElicitResultSchema);

  mcp.registerTool(
    'test_elicitation',
    {
      description: 'Requests user input from the client',
      inputSchema: { message: z.string().describe('The message to show the user') },
    },
    async ({ message }, extra) => {
      const r = await elicit(extra, {
        message,
        requestedSchema: {
          type: 'object',
          properties: {
            username: { type: 'string', description: "User's response" },
            email: { type: 'string', description: "User's email address" },
          },
          required: ['username', 'email'],
        },
      });
      return {
        content: [{ type: 'text', text: `User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` }],
      };
    },
  );

  mcp.registerTool(
    'test_elicitation_sep1034_defaults',
    { description: 'Elicitation with default values for all primitive types (SEP-1034)' },
    async (extra) => {
      const r = await elicit(extra, {
        message: 'Please review and update the form fields with defaults',
        requestedSchema: {
          type: 'object',
          properties: {
            name: { type: 'string', description: 'User name', default: 'John Doe' },
            age: { type: 'integer', description: 'User age', default: 30 },
            score: { type: 'number', description: 'User score', default: 95.5 },
            status: {
              type: 'string',
              description: 'User status',
              enum: ['active', 'inactive', 'pending'],
              default: 'active',
            },
            verified: { type: 'boolean', description: 'Verification status', default: true },
          },
          required: [],
        },
      });
      return {
        content: [
          { type: 'text', text: `Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` },
        ],
      };
    },
  );

  mcp.registerTool(
    'test_elicitation_sep1330_enums',
    { description: 'Elicitation with all enum schema variants (SEP-1330)' },
    async (extra) => {
      const r = await elicit(extra, {
        message: 'Please select options from the enum fields',
        requestedSchema: {
          type: 'object',
          properties: {
            untitledSingle: {
              type: 'string',
              description: 'Untitled single-select',
              enum: ['option1', 'option2', 'option3'],
            },
            titledSingle: {
              type: 'string',
              description: 'Titled single-select',
              oneOf: [
                { const: 'value1', title: 'First Option' },
                { const: 'value2', title: 'Second Option' },
                { const: 'value3', title: 'Third Option' },
              ],
            },
            legacyEnum: {
              type: 'string',
              description: 'Legacy titled enum',
              enum: ['opt1', 'opt2', 'opt3'],
              enumNames: ['Option One', 'Option Two', 'Option Three'],
            },
            untitledMulti: {
              type: 'array',
              description: 'Untitled multi-select',
              items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
            },
            titledMulti: {
              type: 'array',
              description: 'Titled multi-select',
              items: {
                anyOf: [
                  { const: 'value1', title: 'First Choice' },
                  { const: 'value2', title: 'Second Choice' },
                  { const: 'value3', title: 'Third Choice' },
                ],
              },
            },
          },
          required: [],
        },
      });
      return {
        content: [
          { type: 'text', text: `Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}` },
        ],
      };
    },
  );

  // Closes the POST SSE stream mid-call (SEP-1699); the result is replayed from the event store
  // when the client reconnects with Last-Event-ID.
  mcp.registerTool('test_reconnection', { description: 'Closes the SSE stream mid-call to test reconnection' }, async (extra) => {
    await sleep(100);
    extra.closeSSEStream?.();
    await sleep(200);
    return { content: [{ type: 'text', text: 'Reconnection test completed successfully' }] };
  });

  // Raw JSON Schema 2020-12 input schema; patched into tools/list below.
  mcp.registerTool(
    'json_schema_2020_12_tool',
    { description: 'Tool with JSON Schema 2020-12 features', inputSchema: z.object({}).passthrough() },
    async (args) => ({ content: [{ type: 'text', text: `Received: ${JSON.stringify(args)}` }] }),
  );

  let dynamic = null;
  const toggleDynamic = () => {
    if (dynamic) {
      dynamic.remove();
      dynamic = null;
      return 'removed';
    }
    dynamic = mcp.registerTool('test_dynamic_tool', { description: 'Dynamically registered tool' }, async () => ({
      content: [{ type: 'text', text: 'This is a dynamically registered tool.' }],
    }));
    return 'added';
  };
  mcp.registerTool('test_trigger_tool_change', { description: 'Adds or removes test_dynamic_tool (tools/list_changed)' }, async () => ({
    content: [{ type: 'text', text: `test_dynamic_tool ${toggleDynamic()}` }],
  }));

  let dynamicPrompt = null;
  mcp.registerTool('test_trigger_prompt_change', { description: 'Adds or removes test_dynamic_prompt (prompts/list_changed)' }, async () => {
    let what;
    if (dynamicPrompt) {
      dynamicPrompt.remove();
      dynamicPrompt = null;
      what = 'removed';
    } else {
      dynamicPrompt = mcp.registerPrompt('test_dynamic_prompt', { description: 'Dynamically registered prompt' }, async () => ({
        messages: [{ role: 'user', content: { type: 'text', text: 'This is a dynamic prompt.' } }],
      }));
      what = 'added';
    }
    return { content: [{ type: 'text', text: `test_dynamic_prompt ${what}` }] };
  });

  mcp.registerTool('test_trigger_resource_update', { description: 'Sends notifications/resources/updated for test://watched-resource if subscribed' }, async () => {
    if (subscriptions.has(WATCHED)) await mcp.server.sendResourceUpdated({ uri: WATCHED });
    return { content: [{ type: 'text', text: `subscribed=${subscriptions.has(WATCHED)}` }] };
  });

  // ---- resources ---------------------------------------------------------------------------
  mcp.registerResource(
    'static-text',
    'test://static-text',
    { description: 'A static text resource', mimeType: 'text/plain' },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
    }),
  );
  mcp.registerResource(
    'static-binary',
    'test://static-binary',
    { description: 'A static binary resource (PNG)', mimeType: 'image/png' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: PNG_1X1 }] }),
  );
  mcp.registerResource(
    'watched-resource',
    WATCHED,
    { description: 'A resource that can be subscribed to', mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'Watched resource content.' }] }),
  );
  mcp.registerResource(
    'template-data',
    new ResourceTemplate('test://template/{id}/data', {
      list: undefined,
      complete: { id: (value) => ['123', '456', '789'].filter((v) => v.startsWith(value)) },
    }),
    { description: 'A resource template with an id parameter', mimeType: 'application/json' },
    async (uri, { id }) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: 'application/json',
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    }),
  );

  mcp.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    subscriptions.add(req.params.uri);
    return {};
  });
  mcp.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    subscriptions.delete(req.params.uri);
    return {};
  });

  // ---- prompts -----------------------------------------------------------------------------
  mcp.registerPrompt('test_simple_prompt', { description: 'A simple prompt without arguments' }, async () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
  }));
  mcp.registerPrompt(
    'test_prompt_with_arguments',
    {
      description: 'A prompt with two required arguments',
      argsSchema: {
        arg1: completable(z.string().describe('First test argument'), (value) =>
          ['paris', 'park', 'party', 'test', 'testing'].filter((v) => v.startsWith(value ?? '')),
        ),
        arg2: z.string().describe('Second test argument'),
      },
    },
    async ({ arg1, arg2 }) => ({
      messages: [
        { role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } },
      ],
    }),
  );
  mcp.registerPrompt(
    'test_prompt_with_embedded_resource',
    {
      description: 'A prompt that embeds a resource',
      argsSchema: { resourceUri: z.string().describe('URI of the resource to embed') },
    },
    async ({ resourceUri }) => ({
      messages: [
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
          },
        },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ],
    }),
  );
  mcp.registerPrompt('test_prompt_with_image', { description: 'A prompt with image content' }, async () => ({
    messages: [
      { role: 'user', content: { type: 'image', data: PNG_1X1, mimeType: 'image/png' } },
      { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
    ],
  }));

  // Serve the 2020-12 schema verbatim: wrap the tools/list handler McpServer installed.
  const handlers = mcp.server._requestHandlers;
  const listTools = handlers?.get('tools/list');
  if (listTools) {
    handlers.set('tools/list', async (req, extra) => {
      const res = await listTools(req, extra);
      for (const t of res.tools ?? []) if (t.name === 'json_schema_2020_12_tool') t.inputSchema = JSON_SCHEMA_2020_12;
      return res;
    });
  }
  return mcp;
}

// Minimal in-memory event store for resumable SSE streams (Last-Event-ID replay).
class MemoryEventStore {
  constructor() {
    this.events = new Map(); // eventId -> { streamId, message }
  }
  async storeEvent(streamId, message) {
    const eventId = `${streamId}_${Date.now()}_${randomUUID().slice(0, 8)}`;
    this.events.set(eventId, { streamId, message });
    return eventId;
  }
  async getStreamIdForEventId(eventId) {
    return this.events.get(eventId)?.streamId;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const last = this.events.get(lastEventId);
    if (!last) return '';
    let found = false;
    for (const [id, { streamId, message }] of this.events) {
      if (streamId !== last.streamId) continue;
      if (id === lastEventId) {
        found = true;
        continue;
      }
      if (found) await send(id, message);
    }
    return last.streamId;
  }
}

// ---- transports ----------------------------------------------------------------------------
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
function hostnameOf(hostHeader) {
  try {
    return new URL(`http://${hostHeader}`).hostname.toLowerCase();
  } catch {
    return null;
  }
}
function originOk(origin) {
  if (origin === undefined) return true;
  try {
    return LOCAL_HOSTS.has(new URL(origin).hostname.toLowerCase());
  } catch {
    return false;
  }
}

// Echoes the request's id when the body is a single request (JSON-RPC: the error response id
// equals the request id when it can be determined), else null.
function sendJsonError(res, status, code, message, body) {
  const id = body && typeof body === 'object' && !Array.isArray(body) && (typeof body.id === 'string' || typeof body.id === 'number') ? body.id : null;
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id }));
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw.length ? JSON.parse(raw) : undefined;
}

async function serveHttp(port) {
  const transports = new Map(); // session id -> transport
  const servers = new Map(); // session id -> McpServer

  const httpServer = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname !== '/mcp') {
        res.writeHead(404).end('Not Found');
        return;
      }
      // DNS rebinding protection: only loopback Host and Origin.
      if (!LOCAL_HOSTS.has(hostnameOf(req.headers.host ?? '') ?? '') || !originOk(req.headers.origin)) {
        sendJsonError(res, 403, -32000, 'Forbidden: non-localhost Host or Origin header');
        return;
      }
      const sid = req.headers['mcp-session-id'];
      if (req.method === 'POST') {
        let body;
        try {
          body = await readJson(req);
        } catch {
          sendJsonError(res, 400, -32700, 'Parse error');
          return;
        }
        if (sid) {
          const t = transports.get(sid);
          if (!t) {
            sendJsonError(res, 404, -32001, 'Session not found', body);
            return;
          }
          await t.handleRequest(req, res, body);
          return;
        }
        if (!isInitializeRequest(body)) {
          sendJsonError(res, 400, -32000, 'Bad Request: no valid session ID provided', body);
          return;
        }
        const mcp = createServer();
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          eventStore: new MemoryEventStore(),
          retryInterval: 500,
          onsessioninitialized: (id) => {
            transports.set(id, transport);
            servers.set(id, mcp);
          },
        });
        transport.onclose = () => {
          const id = transport.sessionId;
          if (id && transports.get(id) === transport) {
            transports.delete(id);
            const s = servers.get(id);
            servers.delete(id);
            s?.close().catch(() => {});
          }
        };
        await mcp.connect(transport);
        await transport.handleRequest(req, res, body);
        return;
      }
      if (req.method === 'GET' || req.method === 'DELETE') {
        if (!sid) {
          sendJsonError(res, 400, -32000, 'Bad Request: missing session ID');
          return;
        }
        const t = transports.get(sid);
        if (!t) {
          sendJsonError(res, 404, -32001, 'Session not found');
          return;
        }
        await t.handleRequest(req, res);
        return;
      }
      res.writeHead(405, { Allow: 'GET, POST, DELETE' }).end('Method Not Allowed');
    } catch (e) {
      if (!res.headersSent) sendJsonError(res, 500, -32603, `Internal server error: ${e?.message ?? e}`);
      else res.end();
    }
  });

  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, '127.0.0.1', resolve);
  });
  process.stdout.write(`listening ${httpServer.address().port}\n`);

  const shutdown = async () => {
    for (const t of transports.values()) await t.close().catch(() => {});
    httpServer.close();
    httpServer.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

async function serveStdio() {
  const mcp = createServer();
  await mcp.connect(new StdioServerTransport());
}

const arg = process.argv[2];
if (arg === 'stdio') {
  await serveStdio();
} else {
  const port = Number(arg ?? process.env.PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`invalid port: ${arg ?? process.env.PORT}\n`);
    process.exit(2);
  }
  await serveHttp(port);
}
