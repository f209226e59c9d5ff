// A small demo upstream API for the delegation broker: it accepts the broker's upstream identity
// tokens (aud = AUDIENCE) and, on another route, static API keys. Runtime tokens (aud =
// urn:open-cli:runtime) are refused: they are not meant for it.
// Env: PORT (0 = any free port), ISSUER (the broker, default http://127.0.0.1:9400), AUDIENCE
// (urn:demo-api), API_KEYS (JSON {"<key>": "<owner>"}, default {}).
import { createServer } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const PORT = Number(process.env.PORT || 0);
const ISSUER = process.env.ISSUER || 'http://127.0.0.1:9400';
const AUDIENCE = process.env.AUDIENCE || 'urn:demo-api';
const API_KEYS = JSON.parse(process.env.API_KEYS || '{}');
const jwks = createRemoteJWKSet(new URL(`${ISSUER}/jwks`));
let baseUrl;

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

function openapi() {
  return {
    openapi: '3.0.3',
    info: { title: 'Delegation broker demo API', version: '1.0.0' },
    servers: [{ url: baseUrl }],
    paths: {
      '/whoami': {
        get: {
          operationId: 'whoami',
          summary: 'The claims of the verified upstream identity token',
          security: [{ broker: ['read'] }],
          responses: {
            200: {
              description: 'The caller as the token names it',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Whoami' } } },
            },
            401: { description: 'No valid token for this API' },
            403: { description: 'The token lacks the read scope' },
          },
        },
      },
      '/keyed/whoami': {
        get: {
          operationId: 'keyedWhoami',
          summary: 'The owner of the API key',
          security: [{ apiKey: [] }],
          responses: {
            200: {
              description: 'The key owner',
              content: {
                'application/json': {
                  schema: { type: 'object', properties: { owner: { type: 'string' } }, required: ['owner'] },
                },
              },
            },
            401: { description: 'Unknown or missing API key' },
          },
        },
      },
    },
    components: {
      securitySchemes: {
        broker: {
          type: 'oauth2',
          flows: { clientCredentials: { tokenUrl: `${ISSUER}/token`, scopes: { read: 'Read', write: 'Write' } } },
        },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
      },
      schemas: {
        Whoami: {
          type: 'object',
          properties: {
            sub: { type: 'string' },
            aud: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
            scope: { type: 'string' },
            act: { type: 'object', additionalProperties: true },
            jti: { type: 'string' },
          },
        },
      },
    },
  };
}

async function whoami(req, res) {
  const match = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) {
    send(res, 401, { error: 'a bearer token is required' }, { 'www-authenticate': 'Bearer' });
    return;
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(match[1], jwks, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256', 'PS256'],
      requiredClaims: ['exp'],
    }));
  } catch (e) {
    send(res, 401, { error: `invalid token: ${e.message}` }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    return;
  }
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  if (!scopes.includes('read')) {
    send(res, 403, { error: 'the token lacks the read scope' },
      { 'www-authenticate': 'Bearer error="insufficient_scope", scope="read"' });
    return;
  }
  const { sub, aud, scope, act, jti } = payload;
  send(res, 200, { sub, aud, scope, act, jti });
}

function keyedWhoami(req, res) {
  const key = req.headers['x-api-key'];
  if (typeof key === 'string' && Object.hasOwn(API_KEYS, key)) {
    send(res, 200, { owner: API_KEYS[key] });
  } else {
    send(res, 401, { error: 'a valid X-Api-Key header is required' });
  }
}

const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (req.method !== 'GET') {
    send(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
  } else if (path === '/healthz') {
    send(res, 200, { status: 'ok' });
  } else if (path === '/openapi.json') {
    send(res, 200, openapi());
  } else if (path === '/whoami') {
    whoami(req, res).catch((e) => send(res, 500, { error: e.message }));
  } else if (path === '/keyed/whoami') {
    keyedWhoami(req, res);
  } else {
    send(res, 404, { error: 'not found' });
  }
});

server.listen(PORT, '127.0.0.1', () => {
  baseUrl = `http://127.0.0.1:${server.address().port}`;
  console.log(`listening on ${baseUrl}`);
});
