// Signing in through a real OpenID provider (oidc_provider.mjs, started by tests/browser.rs) in
// headless Chromium: the provider's login form, back to the Tokens page with a session cookie,
// create a token with a role and a scope (the CSRF header required), use it through the proxy,
// sign out. Also: the cookie's flags, a tampered cookie, a role or scope the person does not
// hold, and a replayed callback.
//
// Env: ADMIN_URL, PROXY_URL, CHROMIUM.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { ADMIN_URL, PROXY_URL } = process.env;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const api = (method, path, body, headers = {}) => page.evaluate(async ([method, path, body, headers]) => {
    const r = await fetch(path, {
      method, headers: { 'content-type': 'application/json', ...headers },
      body: body === null ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }, [method, path, body, headers]);

  // Not signed in: the API says so, and the page can offer the provider.
  await page.goto(ADMIN_URL + '/');
  assert.equal((await api('GET', '/v1/session', null)).status, 401);
  const methods = await api('GET', '/auth/methods', null);
  assert.equal(methods.body.oidc, true);

  // Sign in at the provider's own login form.
  let callbacks = [];
  page.on('request', (r) => { if (r.url().includes('/auth/callback')) callbacks.push(r.url()); });
  // The page offers the provider; its link starts the sign-in.
  await page.getByRole('link', { name: 'Sign in with your company account' }).click();
  assert.ok(!page.url().startsWith(ADMIN_URL), 'redirected to the provider: ' + page.url() + ' ' + (await page.content()).slice(0, 500));
  await page.fill('input[name="login"]', 'alice');
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  await page.waitForURL(ADMIN_URL + '/', { timeout: 15000 });
  // The page recognises the session cookie without any pasted key.
  await page.getByText('Signed in as Alice Example (alice)').waitFor({ timeout: 10000 });

  const cookies = await context.cookies(ADMIN_URL);
  const session = cookies.find((c) => c.name === 'tokengate_session');
  assert.ok(session, 'a session cookie: ' + JSON.stringify(cookies.map((c) => c.name)));
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.ok(!session.value.includes('alice'), 'the cookie cannot be read');
  assert.ok(!cookies.some((c) => c.name === 'tokengate_signin'), 'the flow cookie is cleared');

  const me = await api('GET', '/v1/session', null);
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.body.caller.id, 'alice');
  assert.equal(me.body.caller.display_name, 'Alice Example');
  assert.equal(me.body.caller.email, 'alice@example.com');
  assert.deepEqual(me.body.caller.roles, ['viewer', 'developer']);
  assert.deepEqual(me.body.caller.scopes, ['env:staging']);
  assert.equal(me.body.caller.signed_in_with, 'session');
  const csrf = me.body.caller.csrf_token;
  assert.ok(csrf && csrf.length >= 20);

  // Mutations need the CSRF header; roles and scopes are bounded by the person's own.
  const create = { name: 'from-sso', expires_in_days: 30, roles: ['developer'], scopes: ['env:staging'] };
  assert.equal((await api('POST', '/v1/tokens', create)).status, 403, 'no CSRF header');
  assert.equal((await api('POST', '/v1/tokens', create, { 'x-csrf-token': 'wrong' })).status, 403);
  assert.equal((await api('POST', '/v1/tokens', { ...create, roles: ['admin'] }, { 'x-csrf-token': csrf })).status, 403);
  assert.equal((await api('POST', '/v1/tokens', { ...create, scopes: ['env:prod'] }, { 'x-csrf-token': csrf })).status, 403);
  const created = await api('POST', '/v1/tokens', create, { 'x-csrf-token': csrf });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const secret = created.body.token;

  // The token works through the proxy as alice, with the role and scope.
  const r = await fetch(PROXY_URL + '/hello', { headers: { authorization: 'Bearer ' + secret } });
  assert.equal(r.status, 200);
  const echoed = Object.fromEntries((await r.json()).headers);
  assert.equal(echoed['x-auth-subject'], 'alice');
  assert.equal(echoed['x-auth-roles'], 'developer');
  assert.equal(echoed['x-auth-scopes'], 'env:staging');

  // The page lists it for the signed-in person, and creates one through its own form (the
  // form sends the CSRF header).
  const list = await api('GET', '/v1/tokens', null);
  assert.ok(list.body.tokens.some((t) => t.name === 'from-sso'));
  await page.reload();
  await page.getByText('Signed in as Alice Example (alice)').waitFor();
  await page.fill('#create-name', 'made-in-the-page');
  await page.click('#create-form button[type="submit"]');
  await page.locator('dialog[open]').first().waitFor();
  const listed = await api('GET', '/v1/tokens', null);
  assert.ok(listed.body.tokens.some((t) => t.name === 'made-in-the-page'), JSON.stringify(listed.body));
  await page.keyboard.press('Escape');

  // A tampered cookie is refused (and not a sign-in as anyone).
  const tampered = { ...session, value: session.value.slice(0, -4) + (session.value.endsWith('AAAA') ? 'BBBB' : 'AAAA') };
  const other = await browser.newContext();
  await other.addCookies([tampered]);
  const otherPage = await other.newPage();
  await otherPage.goto(ADMIN_URL + '/');
  const forged = await otherPage.evaluate(async () => (await fetch('/v1/session')).status);
  assert.equal(forged, 401);
  await other.close();

  // Replaying the callback (same code and state) signs nobody in again.
  assert.equal(callbacks.length, 1, callbacks.join(','));
  const replay = await browser.newContext();
  const replayPage = await replay.newPage();
  const resp = await replayPage.goto(callbacks[0]);
  assert.equal(resp.status(), 401, 'no sign-in in progress in that browser');
  await replay.close();

  // Sign out: the CSRF value is required, then the session is gone.
  assert.equal((await api('POST', '/auth/logout', null)).status, 403);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in with your company account' }).waitFor();
  assert.equal((await api('GET', '/v1/session', null)).status, 401);
  assert.ok(!(await context.cookies(ADMIN_URL)).some((c) => c.name === 'tokengate_session' && c.value));
  console.log('oidc sign-in: all checks passed');
} finally {
  await browser.close();
}
