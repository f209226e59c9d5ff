// A real OpenID provider (panva/oidc-provider 9) for the runtime-auth product tests.
// Client credentials issue RFC 9068 JWT access tokens (typ at+jwt) for AUDIENCE by default;
// resource=<x>:opaque gives an opaque, introspectable token instead. GET /test/introspections
// counts the introspection requests received.
// Env: PORT, ISSUER (default http://127.0.0.1:PORT), AUDIENCE, SCOPES (space-separated, granted
// to the agent client), AT_TTL (seconds), AT_ALG (RS256, ES256, …), JWKS_FILE (private JWKS).
import Provider from 'oidc-provider';
import { readFileSync } from 'node:fs';

const PORT = Number(process.env.PORT || 9400);
const ISSUER = process.env.ISSUER || `http://127.0.0.1:${PORT}`;
const AUDIENCE = process.env.AUDIENCE || 'urn:open-cli:runtime';
const SCOPES = (process.env.SCOPES || 'tools:read').split(/\s+/).filter(Boolean);
const TTL = Number(process.env.AT_TTL || 3600);

const provider = new Provider(ISSUER, {
  ...(process.env.JWKS_FILE ? { jwks: JSON.parse(readFileSync(process.env.JWKS_FILE, 'utf8')) } : {}),
  clients: [
    { client_id: 'agent-1', client_secret: 'agent-1-secret', grant_types: ['client_credentials'],
      response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPES.join(' ') },
    { client_id: 'runtime', client_secret: 'runtime-secret', grant_types: [], response_types: [], redirect_uris: [] },
    // `open-cli auth login`: a public native client (PKCE; any loopback port, RFC 8252 7.3),
    // authorization code, refresh tokens and the device authorization grant (RFC 8628).
    { client_id: 'cli', token_endpoint_auth_method: 'none', application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'], redirect_uris: ['http://127.0.0.1/callback'],
      scope: ['openid', 'offline_access', ...SCOPES].join(' ') },
  ],
  scopes: ['openid', 'offline_access', ...SCOPES],
  features: {
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    // Built-in login and consent pages (any login name, any password): a test drives them with
    // an HTTP client as the person at the browser would.
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => AUDIENCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => ({
        scope: SCOPES.join(' '),
        audience: resourceIndicator,
        accessTokenTTL: TTL,
        ...(resourceIndicator.endsWith(':opaque')
          ? { accessTokenFormat: 'opaque' }
          : { accessTokenFormat: 'jwt', jwt: { sign: { alg: process.env.AT_ALG || 'RS256' } } }),
      }),
    },
  },
  ttl: { ClientCredentials: TTL, AccessToken: TTL, DeviceCode: 600 },
});
provider.proxy = true;
// Counts introspection requests, for the tests that bound how often the runtime asks:
// GET /test/introspections → {"count": N}.
let introspections = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/introspections') {
    ctx.body = { count: introspections };
    return;
  }
  if (ctx.path === '/token/introspection') introspections += 1;
  await next();
});
provider.listen(PORT, '127.0.0.1', () => {
  console.log(`listening on ${ISSUER}`);
});
