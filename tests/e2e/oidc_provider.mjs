// A real OpenID provider for the tests: npm's certified `oidc-provider` on a loopback port,
// with one confidential client for tokengate (code flow and device flow, RFC 8628) and its
// development login form (any login name
// signs in as that account; the password is not checked). Accounts get claims from
// ACCOUNTS below, or defaults derived from the login name.
//
// Test hook: POST /__test/rotate rotates the signing key.
// Usage: PORT=0 CLIENT_ID=tokengate CLIENT_SECRET=... REDIRECT_URI=http://127.0.0.1:N/auth/callback \
//   node oidc_provider.mjs      -> prints "issuer http://127.0.0.1:PORT" once listening.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

const ACCOUNTS = {
  alice: { name: 'Alice Example', email: 'alice@example.com', groups: ['engineering'] },
  olga: { name: 'Olga Operator', email: 'olga@example.com', groups: ['platform'] },
  mallory: { name: 'Mallory', email: 'mallory@example.com', groups: ['contractors'] },
};

function key(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const keys = [key('k1')];

function configuration() {
  return {
    clients: [{
      client_id: process.env.CLIENT_ID || 'tokengate',
      client_secret: process.env.CLIENT_SECRET || 'tokengate-test-client-secret',
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
    }],
    jwks: { keys },
    claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    async findAccount(ctx, id) {
      const a = ACCOUNTS[id] || { name: id, email: `${id}@example.com`, groups: [] };
      return { accountId: id, async claims() { return { sub: id, ...a, email_verified: true }; } };
    },
    // Consent is implied: tokengate is a first-party client.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email groups');
      await grant.save();
      return grant;
    },
    ttl: { Session: 600, Grant: 600, Interaction: 600, AuthorizationCode: 60, IdToken: 300, AccessToken: 300 },
  };
}

// POST /__test/rotate replaces the signing key (the old one leaves the JWKS at once), as a
// provider rotating its keys does; state (sessions, grants) lives in the shared memory adapter.
let handler = new Provider(issuer, configuration()).callback();
let rotations = 0;
server.on('request', (req, res) => {
  if (req.method === 'POST' && req.url === '/__test/rotate') {
    rotations += 1;
    keys.splice(0, keys.length, key(`k${rotations + 1}`));
    handler = new Provider(issuer, configuration()).callback();
    res.writeHead(204).end();
    return;
  }
  handler(req, res);
});
console.log(`issuer ${issuer}`);
