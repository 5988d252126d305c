#!/usr/bin/env node
// A local OpenID Provider for shieldwall's end-to-end tests and the local gateway.
//
// It issues JWT access tokens (RFC 9068, `typ: at+jwt`) by the client credentials grant for a few
// resource servers, publishes its discovery document and JWKS, and keeps its signing keys in a
// private JWKS file: the same file on restart keeps the keys, a new file is a key rotation.
// Listens on 127.0.0.1 only. Run `node idp.js --help` for the options.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const HELP = `usage: node idp.js [options]

  --port N              port on 127.0.0.1 (env IDP_PORT; default 0 = any free port)
  --issuer URL          issuer identifier (env IDP_ISSUER; default http://127.0.0.1:PORT)
  --keys FILE           private JWKS file; generated (RS256, ES256, EdDSA) if missing
                        (env IDP_KEYS; default ./idp-keys.json)
  --clients FILE        JSON array of clients replacing the demo clients (env IDP_CLIENTS)
  --access-token-ttl S  access token lifetime in seconds (env IDP_ACCESS_TOKEN_TTL; default 300)
  --help                this text

When ready it prints one JSON line to stdout: {"msg":"idp ready","port":N,"issuer":...}.`;

// Resource servers, by resource indicator (RFC 8707: an absolute URI). Every variant of the orders
// API has the same audience, so a gateway configured for `orders-api` accepts all three and the
// tests choose the signature algorithm by choosing the resource.
const RESOURCES = {
  'urn:shieldwall:orders-api': { audience: 'orders-api', alg: 'RS256', scope: 'orders:read orders:write admin' },
  'urn:shieldwall:orders-api:es256': { audience: 'orders-api', alg: 'ES256', scope: 'orders:read orders:write admin' },
  'urn:shieldwall:orders-api:eddsa': { audience: 'orders-api', alg: 'EdDSA', scope: 'orders:read orders:write admin' },
  'urn:shieldwall:admin-api': { audience: 'admin-api', alg: 'RS256', scope: 'admin' },
  // The bank reference's payments API (policy-authz decides on its tokens).
  'urn:shieldwall:payments-api': { audience: 'payments-api', alg: 'ES256', scope: 'payments:read payments:transfer' },
  // The bank reference's accounts and payments API (scripts/gateway.sh up, docs/bank-reference.md).
  'urn:shieldwall:bank-api': { audience: 'bank-api', alg: 'ES256', scope: 'accounts:read payments:write statements:read' },
  'urn:shieldwall:bank-api:opaque': { audience: 'bank-api', format: 'opaque', scope: 'accounts:read payments:write statements:read' },
  // Opaque tokens, for the introspection endpoint (oidc-provider does not introspect JWTs).
  'urn:shieldwall:orders-api:opaque': { audience: 'orders-api', format: 'opaque', scope: 'orders:read orders:write admin' },
};
const DEFAULT_RESOURCE = 'urn:shieldwall:orders-api';

// Demo clients. The secret of each is `<client_id>-secret`. Both client authentication methods
// appear so that both are exercised; the ready line tells callers which client uses which.
const DEMO_CLIENTS = [
  { client_id: 'orders-reader', scope: 'orders:read', tenant: 'a', tier: 'free', token_endpoint_auth_method: 'client_secret_basic' },
  { client_id: 'orders-writer', scope: 'orders:read orders:write', tenant: 'a', tier: 'gold', token_endpoint_auth_method: 'client_secret_post' },
  { client_id: 'tenant-b', scope: 'orders:read', tenant: 'b', tier: 'free', token_endpoint_auth_method: 'client_secret_basic' },
  { client_id: 'admin', scope: 'admin', tier: 'gold', token_endpoint_auth_method: 'client_secret_post' },
  // The gateway itself, for token introspection; it asks for no tokens of its own.
  { client_id: 'gateway', scope: '', token_endpoint_auth_method: 'client_secret_basic' },
  // Its access tokens are bound to the client certificate it presents (RFC 8705 §3).
  // The bank reference's tellers, one per tenant; their tokens are for the bank API by default.
  { client_id: 'bank-a-teller', scope: 'accounts:read payments:write statements:read', tenant: 'bank-a', tier: 'gold', token_endpoint_auth_method: 'client_secret_basic', resource: 'urn:shieldwall:bank-api' },
  { client_id: 'bank-b-teller', scope: 'accounts:read statements:read', tenant: 'bank-b', tier: 'free', token_endpoint_auth_method: 'client_secret_basic', resource: 'urn:shieldwall:bank-api' },
  { client_id: 'orders-bound', scope: 'orders:read', tenant: 'a', tier: 'free', token_endpoint_auth_method: 'client_secret_basic', certificate_bound: true },
];

// The header carrying the client certificate of a token request, URL-encoded PEM. This IdP speaks
// plain HTTP on loopback; like an IdP behind a TLS-terminating proxy, it learns the certificate
// the client presented from the proxy (Envoy: `set_current_client_cert_details` / XFCC `Cert`).
const CLIENT_CERT_HEADER = 'x-client-cert';

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        issuer: { type: 'string' },
        keys: { type: 'string' },
        clients: { type: 'string' },
        'access-token-ttl': { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    fail(`${err.message}\n${HELP}`);
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const port = Number(values.port ?? process.env.IDP_PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port: not a port: ${values.port}`);
  const ttl = Number(values['access-token-ttl'] ?? process.env.IDP_ACCESS_TOKEN_TTL ?? 300);
  if (!Number.isSafeInteger(ttl) || ttl <= 0) fail('--access-token-ttl: not a positive number of seconds');
  return {
    port,
    issuer: values.issuer ?? process.env.IDP_ISSUER,
    keys: values.keys ?? process.env.IDP_KEYS ?? 'idp-keys.json',
    clients: values.clients ?? process.env.IDP_CLIENTS,
    ttl,
  };
}

// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
function thumbprint(jwk) {
  const members = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] }[jwk.kty];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function generateKeys() {
  const pairs = [
    ['RS256', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['EdDSA', crypto.generateKeyPairSync('ed25519')],
  ];
  return {
    keys: pairs.map(([alg, { privateKey }]) => {
      const jwk = privateKey.export({ format: 'jwk' });
      return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${thumbprint(jwk).slice(0, 16)}` };
    }),
  };
}

// Loads the private JWKS, or generates and writes it (mode 0600) when the file does not exist.
function loadKeys(file) {
  if (fs.existsSync(file)) {
    let jwks;
    try {
      jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      fail(`--keys ${file}: ${err.message}`);
    }
    if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail(`--keys ${file}: not a JWKS with keys`);
    return { jwks, generated: false };
  }
  const jwks = generateKeys();
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  return { jwks, generated: true };
}

function loadClients(file) {
  let list = DEMO_CLIENTS;
  if (file) {
    try {
      list = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      fail(`--clients ${file}: ${err.message}`);
    }
    if (!Array.isArray(list)) fail(`--clients ${file}: not a JSON array`);
  }
  return list.map((c, i) => {
    if (typeof c.client_id !== 'string' || !c.client_id) fail(`clients[${i}].client_id: missing`);
    if (c.resource !== undefined && !RESOURCES[c.resource]) fail(`clients[${i}].resource: unknown resource ${c.resource}`);
    return {
      client_id: c.client_id,
      client_secret: c.client_secret ?? `${c.client_id}-secret`,
      scope: c.scope ?? '',
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
      resource: c.resource,
      access_token_ttl: c.access_token_ttl,
      certificate_bound: c.certificate_bound === true,
      // Claims added to every access token of this client.
      claims: {
        ...(c.tenant !== undefined ? { tenant: c.tenant } : {}),
        ...(c.tier !== undefined ? { tier: c.tier } : {}),
        ...(c.claims ?? {}),
      },
    };
  });
}

async function main() {
  const opts = options();
  const { jwks, generated } = loadKeys(opts.keys);
  const clients = loadClients(opts.clients);
  const byId = new Map(clients.map((c) => [c.client_id, c]));

  // Bind first so that port 0 resolves before the issuer, which names the port, is fixed.
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = opts.issuer ?? `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      tls_client_certificate_bound_access_tokens: c.certificate_bound,
      // No `scope` metadata: oidc-provider only accepts its static (OpenID) scopes there. Which
      // resource scopes a client may have is checked in getResourceServerInfo below.
    })),
    jwks,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx) => {
          const value = ctx.get(CLIENT_CERT_HEADER);
          return value ? decodeURIComponent(value) : undefined;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client) => byId.get(client.clientId)?.resource ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator, client) => {
          const rs = RESOURCES[indicator];
          if (!rs) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          const entry = byId.get(client.clientId);
          const allowed = new Set((entry?.scope ?? '').split(' ').filter(Boolean));
          // Client credentials: an omitted scope means every scope the client may have; a scope the
          // client may not have is an error rather than silently dropped.
          if (ctx.oidc.params.scope === undefined) {
            ctx.oidc.params.scope = [...allowed].join(' ') || undefined;
          }
          for (const s of (ctx.oidc.params.scope ?? '').split(' ').filter(Boolean)) {
            if (!allowed.has(s)) throw new errors.InvalidScope('requested scope is not allowed for this client', s);
          }
          return {
            audience: rs.audience,
            scope: rs.scope,
            accessTokenFormat: rs.format ?? 'jwt',
            accessTokenTTL: entry?.access_token_ttl ?? opts.ttl,
            ...(rs.alg ? { jwt: { sign: { alg: rs.alg } } } : {}),
          };
        },
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const entry = byId.get(token.clientId);
      return entry && Object.keys(entry.claims).length ? { ...entry.claims } : undefined;
    },
  });

  // Request counts per path (GET /__stats), so tests can tell how often a gateway fetched the JWKS.
  const hits = {};
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__stats') {
      ctx.body = hits;
      return;
    }
    hits[ctx.path] = (hits[ctx.path] ?? 0) + 1;
    await next();
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`idp: server error: ${err.stack}\n`));
  provider.on('grant.error', (ctx, err) => process.stderr.write(`idp: token error: ${err.message} ${err.error_description ?? ''}\n`));

  server.on('request', provider.callback());

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  process.stdout.write(`${JSON.stringify({
    msg: 'idp ready',
    port,
    issuer,
    jwks_uri: `${issuer}/jwks`,
    token_endpoint: `${issuer}/token`,
    keys_file: opts.keys,
    keys_generated: generated,
    kids: jwks.keys.map((k) => k.kid),
    clients: Object.fromEntries(clients.map((c) => [c.client_id, c.token_endpoint_auth_method])),
  })}\n`);
}

main().catch((err) => fail(err.stack ?? String(err)));
