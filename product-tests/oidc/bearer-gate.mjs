// A bearer-token gate in front of an HTTP server, for the MCP transport OAuth product tests.
// Every request must carry `Authorization: Bearer <JWT>` signed by ISSUER's keys (its JWKS),
// with `aud` AUDIENCE and `iss` ISSUER, and not on the reject list; it is then streamed to
// TARGET unchanged (SSE included). Anything else gets 401.
// Env: PORT (0 = any free port), ISSUER, AUDIENCE, TARGET (http://127.0.0.1:N).
//   POST /_gate/reject {"token": "…"}  refuse that token from now on (an upstream revoking it)
//   GET  /_gate/tokens                 every token presented, in order (valid or not)
// Prints `listening on http://127.0.0.1:PORT` when ready.
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const { ISSUER, AUDIENCE, TARGET } = process.env;
const jwks = createRemoteJWKSet(new URL(`${ISSUER}/jwks`));
const target = new URL(TARGET);
const rejected = new Set();
const seen = [];

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const server = http.createServer(async (req, res) => {
  if (req.url === '/_gate/tokens') return json(res, 200, seen);
  if (req.url === '/_gate/reject' && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    rejected.add(JSON.parse(body).token);
    return json(res, 200, { rejected: rejected.size });
  }
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  if (!m) return json(res, 401, { error: 'no bearer token' });
  seen.push(m[1]);
  if (rejected.has(m[1])) return json(res, 401, { error: 'token revoked' });
  try {
    await jwtVerify(m[1], jwks, { issuer: ISSUER, audience: AUDIENCE });
  } catch (e) {
    return json(res, 401, { error: `invalid token: ${e.code || e.message}` });
  }
  const up = http.request(
    { host: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: target.host } },
    (ur) => { res.writeHead(ur.statusCode, ur.headers); ur.pipe(res); },
  );
  up.on('error', (e) => json(res, 502, { error: String(e) }));
  req.pipe(up);
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
