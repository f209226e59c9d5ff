// Reference delegation broker for open-cli: a real OpenID provider (panva/oidc-provider 9) with an
// RFC 8693 token-exchange grant on its /token endpoint. It is a reference, not a hardened
// production service: in-memory storage, development login pages, demo client secrets.
//
// The provider's own grants (client credentials, authorization code, refresh token, device code)
// issue RFC 9068 JWT access tokens (typ at+jwt, RS256) for RUNTIME_AUDIENCE. The token-exchange
// grant (urn:ietf:params:oauth:grant-type:token-exchange) turns a runtime token into
//   * a delegation: a narrower, shorter-lived runtime token for a sub-agent (audience =
//     RUNTIME_AUDIENCE, any client allowed the grant, typically `cli`), or
//   * an upstream identity token: a token for an upstream API listed in UPSTREAMS, which only the
//     `runtime` client may ask for (the runtime exchanging its caller's token).
// Every token it issues is signed with the provider's own RS256 key, so all of them verify
// against the provider's /jwks.
//
// Env: PORT (9400), ISSUER (http://127.0.0.1:PORT), RUNTIME_AUDIENCE (urn:open-cli:runtime),
// SCOPES (space-separated, grantable by the provider's own grants), AT_TTL (3600 s),
// JWKS_FILE (private JWKS; default: one RSA key generated at start-up), DELEGATION_TTL (300 s),
// MAX_DELEGATION_TTL (900 s), UPSTREAMS (JSON {"<audience>": ["<scope>", …]}, default {}),
// UPSTREAM_TTL (600 s), AGENT_CLIENT_SECRET (agent-1-secret), RUNTIME_CLIENT_SECRET
// (runtime-secret).
import Provider, { errors } from 'oidc-provider';
import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, importJWK, jwtVerify } from 'jose';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

function seconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer number of seconds, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const PORT = Number(process.env.PORT || 9400);
const ISSUER = process.env.ISSUER || `http://127.0.0.1:${PORT}`;
const RUNTIME_AUDIENCE = process.env.RUNTIME_AUDIENCE || 'urn:open-cli:runtime';
const SCOPES = (process.env.SCOPES || '').split(/\s+/).filter(Boolean);
const AT_TTL = seconds('AT_TTL', 3600);
const DELEGATION_TTL = seconds('DELEGATION_TTL', 300);
const MAX_DELEGATION_TTL = seconds('MAX_DELEGATION_TTL', 900);
const UPSTREAM_TTL = seconds('UPSTREAM_TTL', 600);
const UPSTREAMS = JSON.parse(process.env.UPSTREAMS || '{}');
if (typeof UPSTREAMS !== 'object' || UPSTREAMS === null || Array.isArray(UPSTREAMS)
  || !Object.values(UPSTREAMS).every((s) => Array.isArray(s) && s.every((x) => typeof x === 'string'))) {
  throw new Error('UPSTREAMS must be a JSON object mapping audiences to arrays of scope strings');
}
if (Object.hasOwn(UPSTREAMS, RUNTIME_AUDIENCE)) {
  throw new Error('UPSTREAMS must not contain RUNTIME_AUDIENCE');
}
const AGENT_CLIENT_SECRET = process.env.AGENT_CLIENT_SECRET || 'agent-1-secret';
const RUNTIME_CLIENT_SECRET = process.env.RUNTIME_CLIENT_SECRET || 'runtime-secret';

// --- keys -------------------------------------------------------------------------------------
// One private JWKS shared by the provider (its own access and ID tokens) and the exchange grant.
async function loadJwks() {
  if (process.env.JWKS_FILE) {
    return JSON.parse(readFileSync(process.env.JWKS_FILE, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: await calculateJwkThumbprint(jwk), use: 'sig', alg: 'RS256' }] };
}
const JWKS = await loadJwks();
// The exchange grant signs with the first RSA key usable for RS256 (the one the provider picks for
// RS256 when the set holds a single RSA key, the usual case).
const signingJwk = JWKS.keys.find((k) => k.kty === 'RSA' && k.d && (!k.alg || k.alg === 'RS256')
  && (!k.use || k.use === 'sig'));
if (!signingJwk?.kid) throw new Error('the JWKS needs an RSA private key (alg RS256) with a kid');
const signingKey = await importJWK({ ...signingJwk, alg: 'RS256' }, 'RS256');
const PUBLIC_MEMBERS = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'] };
const publicKeys = createLocalJWKSet({
  keys: JWKS.keys.filter((k) => PUBLIC_MEMBERS[k.kty]).map((k) => Object.fromEntries(
    ['kty', 'kid', 'alg', 'use', ...PUBLIC_MEMBERS[k.kty]].filter((m) => k[m] !== undefined).map((m) => [m, k[m]]),
  )),
});

// --- provider ---------------------------------------------------------------------------------
const provider = new Provider(ISSUER, {
  jwks: JWKS,
  clients: [
    // A machine agent: client credentials → runtime token with SCOPES.
    { client_id: 'agent-1', client_secret: AGENT_CLIENT_SECRET, grant_types: ['client_credentials'],
      response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPES.join(' ') },
    // `open-cli auth login` (public native client: PKCE, any loopback port per RFC 8252 7.3,
    // device flow) and `open-cli auth delegate` (token exchange of the user's own token).
    { client_id: 'cli', token_endpoint_auth_method: 'none', application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code',
        TOKEN_EXCHANGE],
      response_types: ['code'], redirect_uris: ['http://127.0.0.1/callback'],
      scope: ['openid', 'offline_access', ...SCOPES].join(' ') },
    // The runtime: exchanges its caller's token for an upstream identity token. oidc-provider
    // accepts client_secret_post for a client registered with client_secret_basic (and vice versa).
    { client_id: 'runtime', client_secret: RUNTIME_CLIENT_SECRET, grant_types: [TOKEN_EXCHANGE],
      response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic' },
  ],
  scopes: ['openid', 'offline_access', ...SCOPES],
  features: {
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    // Built-in login and consent pages (any login name, any password). Development only.
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RUNTIME_AUDIENCE,
      useGrantedResource: async () => true,
      // The provider's own grants only mint runtime tokens; upstream tokens come from the
      // exchange grant alone.
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RUNTIME_AUDIENCE) {
          throw new errors.InvalidTarget(`unknown resource; this provider only issues tokens for ${RUNTIME_AUDIENCE}`);
        }
        return {
          scope: SCOPES.join(' '),
          audience: RUNTIME_AUDIENCE,
          accessTokenTTL: AT_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Explicit lifetimes (the defaults print a notice on stdout, where the exchange log goes).
  ttl: {
    ClientCredentials: AT_TTL, AccessToken: AT_TTL, DeviceCode: 600, IdToken: 3600,
    Interaction: 3600, Session: 14 * 24 * 3600, Grant: 14 * 24 * 3600, RefreshToken: 14 * 24 * 3600,
  },
});
provider.proxy = true;

// --- token exchange (RFC 8693) ----------------------------------------------------------------
function fail(ErrorClass, description) {
  const err = new ErrorClass(description);
  // InvalidGrant's constructor takes no description (it carries a fixed one): set it.
  err.error_description = description;
  return err;
}

function scopeList(value) {
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : [];
}

const isKind = {
  tool: (s) => s.startsWith('tool:'),
  selection: (s) => s.startsWith('bundle:') || s.startsWith('profile:'),
};

async function sign(claims) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: signingJwk.kid, typ: 'at+jwt' })
    .sign(signingKey);
}

function log(entry) {
  process.stdout.write(`${JSON.stringify({ event: 'token_exchange', ...entry })}\n`);
}

// Issue an exchanged token for `parent`'s subject and answer with it (RFC 8693 §2.2.1): `actor`
// becomes the outermost `act`, the parent's own `act` nested inside (RFC 8693 §4.1: the current
// actor outermost, earlier actors within); `claims` are added; `delegation_id`, when among them,
// is also in the answer. `now` is the time the lifetime was computed at (so the token never
// outlives its parent by the time spent in between).
async function issue(ctx, audit, parent, { now, aud, scope, lifetime, actor, claims }) {
  audit.scope = scope;
  const act = parent.act && typeof parent.act === 'object' ? { sub: actor, act: parent.act } : { sub: actor };
  const accessToken = await sign({
    iss: ISSUER,
    aud,
    sub: parent.sub,
    client_id: ctx.oidc.client.clientId,
    scope,
    iat: now,
    exp: now + lifetime,
    jti: randomUUID(),
    act,
    ...claims,
  });
  ctx.body = {
    access_token: accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: lifetime,
    scope,
    ...(claims.delegation_id ? { delegation_id: claims.delegation_id } : {}),
  };
}

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  const target = params.audience ?? RUNTIME_AUDIENCE;
  const audit = { client: client.clientId, sub: undefined, audience: target, scope: undefined };
  ctx.state.tokenExchange = audit;

  if (params.subject_token === undefined) {
    throw fail(errors.InvalidRequest, 'subject_token is required');
  }
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE && params.subject_token_type !== JWT_TOKEN_TYPE) {
    throw fail(errors.InvalidRequest, `unsupported subject_token_type ${JSON.stringify(params.subject_token_type ?? null)}: use ${ACCESS_TOKEN_TYPE} (or ${JWT_TOKEN_TYPE})`);
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw fail(errors.InvalidRequest, `unsupported requested_token_type ${JSON.stringify(params.requested_token_type)}: only ${ACCESS_TOKEN_TYPE} is issued`);
  }

  let parent;
  try {
    ({ payload: parent } = await jwtVerify(params.subject_token, publicKeys, {
      issuer: ISSUER,
      audience: RUNTIME_AUDIENCE,
      algorithms: ['RS256', 'ES256', 'PS256'],
      requiredClaims: ['exp'],
    }));
  } catch (e) {
    throw fail(errors.InvalidGrant, `subject_token is not a valid runtime token: ${e.message}`);
  }
  if (typeof parent.sub !== 'string' || !parent.sub) {
    throw fail(errors.InvalidGrant, 'subject_token is not a valid runtime token: it has no sub');
  }
  audit.sub = parent.sub;

  const now = Math.floor(Date.now() / 1000);
  const parentRemaining = parent.exp - now;

  if (target === RUNTIME_AUDIENCE) {
    // ---- delegation: a narrower, shorter-lived runtime token for a sub-agent ----
    const requested = [...new Set(scopeList(params.scope))];
    if (requested.length === 0) {
      throw fail(errors.InvalidRequest, "scope is required: name the subset of the subject token's scopes to delegate");
    }
    // The scopes the runtime reads from the token: the `scope` string and the `scp` array.
    const held = new Set([
      ...scopeList(parent.scope),
      ...(Array.isArray(parent.scp) ? parent.scp.filter((x) => typeof x === 'string') : []),
    ]);
    for (const s of requested) {
      if (!held.has(s)) {
        throw fail(errors.InvalidScope, `escalation refused: \`${s}\` is not held by the subject token`);
      }
    }
    // Kind monotonicity. The runtime grants tools as
    //   explicit (tool:) ∩ union (bundle:/profile:)   when a token holds both kinds,
    //   whichever kind is present                     otherwise.
    // A subset of scopes is therefore narrower only if it keeps every kind the parent holds:
    // dropping all tool: scopes from a parent that has them turns "these tools of these bundles"
    // into "every tool of these bundles", and dropping all bundle:/profile: scopes turns "these
    // tools within these bundles" into "these tools wherever they are". So: if the parent holds
    // any tool: scope the child must keep at least one, and if the parent holds any bundle: or
    // profile: scope the child must keep at least one of those.
    const parentScopes = [...held];
    if (parentScopes.some(isKind.tool) && !requested.some(isKind.tool)) {
      throw fail(errors.InvalidScope, 'the subject token holds tool: scopes, so the delegation must keep at least one: without them it would reach every tool of its bundles and profiles, which is wider than the subject token');
    }
    if (parentScopes.some(isKind.selection) && !requested.some(isKind.selection)) {
      throw fail(errors.InvalidScope, 'the subject token holds bundle:/profile: scopes, so the delegation must keep at least one: without them its tool: scopes would not be confined to those bundles and profiles, which is wider than the subject token');
    }

    let wanted = DELEGATION_TTL;
    if (params.expires_in !== undefined) {
      if (!/^[1-9][0-9]{0,9}$/.test(params.expires_in)) {
        throw fail(errors.InvalidRequest, 'expires_in must be a positive integer number of seconds');
      }
      wanted = Number(params.expires_in);
    }
    const lifetime = Math.min(wanted, MAX_DELEGATION_TTL, parentRemaining);
    if (lifetime <= 0) {
      throw fail(errors.InvalidGrant, 'subject_token expires too soon to delegate from');
    }
    if (params.actor_id !== undefined && params.actor_id.length > 256) {
      throw fail(errors.InvalidRequest, 'actor_id is too long (256 characters at most)');
    }

    const actor = { sub: params.actor_id ?? client.clientId };
    const delegationId = randomUUID();
    audit.delegationId = delegationId;
    await issue(ctx, audit, parent, {
      now,
      aud: RUNTIME_AUDIENCE,
      scope: requested.join(' '),
      lifetime,
      actor: actor.sub,
      claims: { delegated_by: parent.act?.sub ?? parent.sub, delegation_id: delegationId },
    });
    return;
  }

  if (Object.hasOwn(UPSTREAMS, target)) {
    // ---- upstream identity: the runtime exchanges its caller's token for an upstream token ----
    if (client.clientId !== 'runtime') {
      throw fail(errors.UnauthorizedClient, "only the runtime may exchange a caller's token for an upstream token");
    }
    const allowed = UPSTREAMS[target];
    let granted = allowed;
    if (params.scope !== undefined) {
      granted = [...new Set(scopeList(params.scope))];
      for (const s of granted) {
        if (!allowed.includes(s)) {
          throw fail(errors.InvalidScope, `\`${s}\` is not a scope this broker grants for ${target}`);
        }
      }
    }
    const lifetime = Math.min(UPSTREAM_TTL, parentRemaining);
    if (lifetime <= 0) {
      throw fail(errors.InvalidGrant, 'subject_token expires too soon to exchange');
    }
    // The runtime acts for the caller; a delegated caller's chain of actors stays inside.
    await issue(ctx, audit, parent, {
      now,
      aud: target,
      scope: granted.join(' '),
      lifetime,
      actor: client.clientId,
      claims: {},
    });
    return;
  }

  throw fail(errors.InvalidTarget, `unknown audience ${JSON.stringify(target)}: use ${RUNTIME_AUDIENCE} (delegation) or one of the configured upstreams`);
}

provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
  'subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'scope', 'actor_id',
  'expires_in',
]);

// One JSON line per exchange attempt (including ones refused before the handler ran, e.g. a
// client not allowed the grant or failing authentication). Never the tokens.
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params?.grant_type !== TOKEN_EXCHANGE) return;
  const a = ctx.state.tokenExchange ?? {};
  log({ outcome: 'granted', client: a.client, sub: a.sub, audience: a.audience, scope: a.scope,
    delegationId: a.delegationId });
});
provider.on('grant.error', (ctx, err) => {
  if (ctx.oidc?.params?.grant_type !== TOKEN_EXCHANGE) return;
  const a = ctx.state.tokenExchange ?? {};
  log({ outcome: 'refused', client: a.client ?? ctx.oidc.client?.clientId ?? ctx.oidc.params.client_id,
    sub: a.sub, audience: a.audience ?? ctx.oidc.params.audience ?? RUNTIME_AUDIENCE, scope: ctx.oidc.params.scope,
    error: err.error ?? err.message, error_description: err.error_description });
});

provider.listen(PORT, '127.0.0.1', () => {
  console.log(`listening on ${ISSUER}`);
});
