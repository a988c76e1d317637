// The provider rotates its signing key between two sign-ins: the second ID token names a key
// tokengate has not fetched, and the sign-in still succeeds (the JWKS is fetched again).
// Env: ADMIN_URL, ISSUER, CHROMIUM.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { ADMIN_URL, ISSUER } = process.env;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

async function signIn(login) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(ADMIN_URL + '/auth/login?return_to=/');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  await page.waitForURL(ADMIN_URL + '/', { timeout: 15000 });
  const me = await page.evaluate(async () => {
    const r = await fetch('/v1/session');
    return { status: r.status, body: await r.json() };
  });
  await context.close();
  return me;
}

try {
  const first = await signIn('alice');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const kids = async () => (await (await fetch(ISSUER + '/jwks')).json()).keys.map((k) => k.kid);
  const before = await kids();
  assert.equal((await fetch(ISSUER + '/__test/rotate', { method: 'POST' })).status, 204);
  const after = await kids();
  assert.notDeepEqual(before, after, 'the provider rotated its key');
  // Past the refetch bound, a token signed with the new key is accepted.
  await new Promise((resolve) => setTimeout(resolve, 5500));
  const second = await signIn('olga');
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.equal(second.body.caller.id, 'olga');
  assert.equal(second.body.caller.admin, 'operator');
  console.log(`oidc key rotation: signed in with ${before} then ${after}`);
} finally {
  await browser.close();
}
