// A real OpenID provider (the `oidc-provider` package, pinned in
// package.json) for the portal's sign-in tests, on 127.0.0.1 only.
//
//   node provider.mjs --port P --issuer http://localhost:P \
//       --redirect-uri http://127.0.0.1:Q/portal/sign-in/callback --secret-file F
//
// One confidential client, `cpis-portal` (client_secret_basic, the code flow
// with PKCE required), a signing key made at start, and the provider's own
// login and consent pages (devInteractions: any password; the login names
// the account). The accounts carry the claims contract's claims
// (docs/claims.md) under the custom scope `cpis`, put in the ID token.
// Prints one JSON line {"ready": issuer} once it listens.

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

function arg(name) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || !process.argv[at + 1]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(2);
  }
  return process.argv[at + 1];
}

const port = Number(arg('port'));
const issuer = arg('issuer');
const redirectUri = arg('redirect-uri');
const secret = readFileSync(arg('secret-file'), 'utf8').trim();

// The people of the tests: a council's duty social worker, a clinician in
// an emergency department, and someone whose claims make no caller.
const ACCOUNTS = {
  'duty-1': { role: 'council', ods_code: 'E09000033' },
  'dr-1': {
    role: 'clinician',
    ods_code: 'RJ1',
    rbac: 'B0107',
    org_name: "St Example's Hospital",
    setting: 'emergency-department',
  },
  stranger: { role: 'visitor' },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'cpis-portal',
      client_secret: secret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [jwk] },
  // PKCE for this confidential client too (the default asks it only of
  // public ones).
  pkce: { required: () => true },
  scopes: ['openid', 'cpis'],
  claims: { openid: ['sub'], cpis: ['role', 'ods_code', 'rbac', 'org_name', 'setting'] },
  // The scope's claims in the ID token itself, as cpis reads them.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['test-only-cookie-signing-key'] },
  ttl: { AuthorizationCode: 120, IdToken: 300, AccessToken: 300, Session: 600, Interaction: 600, Grant: 600 },
  async findAccount(_ctx, id) {
    const claims = ACCOUNTS[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});
// Plain HTTP on loopback: nothing here is behind a proxy.
provider.proxy = false;

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: issuer }));
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
