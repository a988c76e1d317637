// Drives the Tokens page in headless Chromium: sign in, create a token and see it once, see it
// masked in the table, check it works through the proxy, revoke it with a typed-name
// confirmation (it stops working through the proxy), delete it; create a token with limits,
// see them in the table and through the proxy, edit them in a dialog; bad limits store nothing;
// a person may set their own tokens' limits only within their own (set by an operator).
//
// Run by tests/browser.rs, which starts tokengate and passes ADMIN_URL, PROXY_URL, ADMIN_KEY.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { ADMIN_URL, PROXY_URL, ADMIN_KEY, SCREENSHOT } = process.env;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

async function proxyStatus(secret) {
  const r = await fetch(PROXY_URL + '/hello', { headers: { authorization: 'Bearer ' + secret } });
  return r.status;
}

// The proxy's answer once it is `expected` (a change reaches the proxy's cache asynchronously).
async function proxyStatusBecomes(secret, expected) {
  let status;
  for (let i = 0; i < 40; i++) {
    status = await proxyStatus(secret);
    if (status === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return status;
}

// The admin API as an operator, to check what the page stored and to set up a person's tokens.
async function adminGet(path) {
  const r = await fetch(ADMIN_URL + path, { headers: { authorization: 'Bearer ' + ADMIN_KEY } });
  assert.equal(r.status, 200, path);
  return r.json();
}

async function adminPut(path, body) {
  const r = await fetch(ADMIN_URL + path, {
    method: 'PUT',
    headers: { authorization: 'Bearer ' + ADMIN_KEY, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, path);
  return r.json();
}

async function adminPost(path, body) {
  const r = await fetch(ADMIN_URL + path, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + ADMIN_KEY, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201, path);
  return r.json();
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  page.on('pageerror', (e) => failures.push(e.message));
  // Chromium logs every API answer of 4xx as a console error; the checks below expect some.
  const apiAnswer = (m) => m.text().startsWith('Failed to load resource') && new URL(m.location().url).pathname.startsWith('/v1/');
  page.on('console', (m) => { if (m.type() === 'error' && !apiAnswer(m)) failures.push(m.text()); });

  await page.goto(ADMIN_URL + '/');
  await page.locator('#sign-in').waitFor();
  await page.fill('#credential', ADMIN_KEY);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#who'), 'Signed in with an admin key');
  const stored = await page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie]);
  assert.deepEqual(stored, [1, 0, ''], 'the credential lives in session storage only');

  // Create: the expiry choices come from the server.
  const choices = await page.$$eval('#create-expiry option', (os) => os.map((o) => o.value));
  assert.deepEqual(choices, ['30', '60', '90', '180', '365']);
  await page.fill('#create-name', 'browser-token');
  await page.selectOption('#create-expiry', '90');
  await page.fill('#create-owner', 'alice');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  const secret = (await page.textContent('#new-token')).trim();
  assert.match(secret, /^tgp_[0-9A-Za-z]{58}$/);
  assert.equal(await page.textContent('#new-header'), 'Authorization: Bearer ' + secret);
  assert.match(await page.textContent('#created-dialog .warning'), /will not be shown again/);
  await page.click('#copy');
  await page.locator('#copy-status:not(:empty)').waitFor();
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT + '-created.png' });
  await page.click('#close-created');
  await page.locator('#created-dialog:not([open])').waitFor({ state: 'attached' });
  assert.ok(!(await page.content()).includes(secret.slice(16)), 'the secret is gone from the page once the dialog closes');

  // The table shows it masked, active, never used, created by the operator.
  const row = page.locator('#tokens tbody tr', { hasText: 'browser-token' });
  await row.waitFor();
  assert.equal(await row.locator('td.token').textContent(), secret.slice(0, 12) + '...');
  assert.equal(await row.locator('.badge').textContent(), 'active');
  assert.equal(await row.locator('td.last-used').textContent(), 'never');
  assert.equal(await row.locator('td.limits').textContent(), 'none');
  assert.equal(await proxyStatus(secret), 200, 'the new token works through the proxy');

  // The name filter.
  await page.fill('#filter', 'no-such-name');
  await page.locator('#empty:not([hidden])').waitFor();
  await page.fill('#filter', 'BROWSER');
  await row.waitFor();

  // Revoke, with a typed-name confirmation.
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  assert.equal(await page.isDisabled('#confirm-ok'), true);
  await page.fill('#confirm-input', 'browser-tok');
  assert.equal(await page.isDisabled('#confirm-ok'), true, 'a partial name does not confirm');
  await page.fill('#confirm-input', 'browser-token');
  await page.click('#confirm-ok');
  await row.locator('.badge', { hasText: 'revoked' }).waitFor();
  assert.equal(await row.getByRole('button', { name: 'Edit limits' }).count(), 0, 'no limits to edit once revoked');
  assert.equal(await proxyStatus(secret), 401, 'the revoked token stops working through the proxy');
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT + '-revoked.png' });

  // Delete (only offered once revoked).
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  await page.fill('#confirm-input', 'browser-token');
  await page.click('#confirm-ok');
  await row.waitFor({ state: 'detached' });

  // Limits at creation: a collapsed part of the form; a bad network is refused and stores nothing.
  await page.fill('#filter', '');
  const limitsPart = page.locator('#create-limits-part');
  const createLimits = page.locator('#create-limits');
  assert.equal(await createLimits.getByLabel('Requests', { exact: true }).isVisible(), false, 'collapsed by default');
  await limitsPart.locator('summary').click();
  await page.fill('#create-name', 'limited-token');
  await page.fill('#create-owner', 'alice');
  await createLimits.getByLabel('Requests', { exact: true }).fill('100');
  await createLimits.locator('[name=window]').selectOption({ label: 'per minute' });
  await createLimits.getByLabel('Burst').fill('20');
  await createLimits.getByLabel('Quota').fill('100000');
  await createLimits.getByLabel('Allowed networks').fill('10.0.0.0/8, 2001:db8::/32 10.0.0.0/33');
  await page.click('#create-form button[type=submit]');
  await page.locator('#create-error:not(:empty)').waitFor();
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT + '-create-limits.png' });
  assert.match(await page.textContent('#create-error'), /^limits\.networks\[2\]: /);
  assert.equal(await page.isVisible('#created-dialog'), false);
  assert.deepEqual((await adminGet('/v1/tokens?name=limited-token')).tokens, [], 'a refused token is not stored');
  // A burst alone is caught before anything is sent.
  await createLimits.getByLabel('Requests', { exact: true }).fill('');
  await page.click('#create-form button[type=submit]');
  await page.locator('#create-error', { hasText: 'burst: set the requests' }).waitFor();
  await createLimits.getByLabel('Requests', { exact: true }).fill('100');

  await createLimits.getByLabel('Allowed networks').fill('10.0.0.0/8, 2001:db8::/32');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  assert.equal(await page.textContent('#create-error'), '');
  const limited = (await page.textContent('#new-token')).trim();
  await page.click('#close-created');
  assert.equal(await limitsPart.getAttribute('open'), null, 'the limits part closes and empties after creating');
  assert.equal(await createLimits.locator('[name=quota]').inputValue(), '');
  const limitedRow = page.locator('#tokens tbody tr', { hasText: 'limited-token' });
  await limitedRow.waitFor();
  assert.equal(await limitedRow.locator('td.limits').textContent(), '100/60s burst 20, quota 100000, from 10.0.0.0/8 2001:db8::/32');
  const limitedId = await limitedRow.getAttribute('data-id');
  const setLimits = { rate: { requests: 100, window_secs: 60, burst: 20 }, quota: 100000, networks: ['10.0.0.0/8', '2001:db8::/32'] };
  assert.deepEqual((await adminGet('/v1/tokens/' + limitedId)).limits, setLimits);
  assert.equal(await proxyStatus(limited), 403, 'the proxy refuses a client outside the allowed networks');

  // Edit limits: a dialog prefilled with the token's limits; Escape cancels.
  const dialog = page.locator('#limits-dialog');
  const edit = dialog.locator('#edit-limits');
  await limitedRow.getByRole('button', { name: 'Edit limits' }).click();
  await page.locator('#limits-dialog[open]').waitFor();
  assert.equal(await page.textContent('#limits-title'), 'Limits of "limited-token"');
  assert.equal(await edit.getByLabel('Requests', { exact: true }).inputValue(), '100');
  assert.equal(await edit.locator('[name=window]').inputValue(), '60');
  assert.equal(await edit.getByLabel('Burst').inputValue(), '20');
  assert.equal(await edit.getByLabel('Quota').inputValue(), '100000');
  assert.equal(await edit.getByLabel('Allowed networks').inputValue(), '10.0.0.0/8, 2001:db8::/32');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'requests', 'the first field has the focus');
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT + '-limits.png' });
  await page.keyboard.press('Escape');
  await page.locator('#limits-dialog:not([open])').waitFor({ state: 'attached' });

  // Save from the keyboard (Enter in a field): requests per second, no burst, no quota, loopback only.
  await limitedRow.getByRole('button', { name: 'Edit limits' }).click();
  await page.locator('#limits-dialog[open]').waitFor();
  await edit.getByLabel('Requests', { exact: true }).fill('50');
  await edit.locator('[name=window]').selectOption({ label: 'per second' });
  await edit.getByLabel('Burst').fill('');
  await edit.getByLabel('Quota').fill('');
  await edit.getByLabel('Allowed networks').fill('127.0.0.0/8');
  await edit.getByLabel('Allowed networks').press('Enter');
  const edited = { rate: { requests: 50, window_secs: 1 }, networks: ['127.0.0.0/8'] };
  await page.locator('#limits-dialog:not([open])').waitFor({ state: 'attached' });
  await limitedRow.locator('td.limits', { hasText: '50/1s, from 127.0.0.0/8' }).waitFor();
  assert.deepEqual((await adminGet('/v1/tokens/' + limitedId)).limits, edited);
  assert.equal(await proxyStatusBecomes(limited, 200), 200, 'the new limits apply through the proxy');

  // A bad network in the dialog: the error shows there and nothing changes.
  await limitedRow.getByRole('button', { name: 'Edit limits' }).click();
  await page.locator('#limits-dialog[open]').waitFor();
  assert.equal(await edit.getByLabel('Allowed networks').inputValue(), '127.0.0.0/8');
  await edit.getByLabel('Allowed networks').fill('127.0.0.0/8 not-a-network');
  await page.click('#limits-save');
  await page.locator('#limits-error:not(:empty)').waitFor();
  assert.match(await page.textContent('#limits-error'), /networks|limits/);
  assert.equal(await page.isVisible('#limits-dialog'), true, 'the dialog stays open with the error');
  assert.deepEqual((await adminGet('/v1/tokens/' + limitedId)).limits, edited, 'a refused edit stores nothing');

  // Emptying every field removes the limits.
  await edit.getByLabel('Requests', { exact: true }).fill('');
  await edit.getByLabel('Allowed networks').fill('');
  await page.click('#limits-save');
  await page.locator('#limits-dialog:not([open])').waitFor({ state: 'attached' });
  await limitedRow.locator('td.limits', { hasText: 'none' }).waitFor();
  assert.equal((await adminGet('/v1/tokens/' + limitedId)).limits, undefined, 'unlimited: no limits key');

  // Closing the secret's dialog with Escape forgets the secret too.
  await page.fill('#create-name', 'escape-token');
  await page.fill('#create-owner', 'alice');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  const second = (await page.textContent('#new-token')).trim();
  assert.match(second, /^tgp_/);
  await page.keyboard.press('Escape');
  await page.locator('#created-dialog:not([open])').waitFor({ state: 'attached' });
  await page.waitForFunction((s) => !document.documentElement.innerHTML.includes(s), second.slice(16));

  // Signing out forgets the credential.
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  // A person may set their tokens' limits only within their own (here a quota of 100, set by an
  // operator on their principal): more is refused in the dialog.
  await adminPut('/v1/principals/alice', { display_name: 'alice', org: 'acme', roles: ['viewer'], limits: { quota: 100 } });
  const own = await adminPost('/v1/tokens', { name: 'alice-sign-in', expires_in_days: 30, owner: 'alice' });
  const aliceQuota = await adminPost('/v1/tokens', { name: 'alice-quota', expires_in_days: 30, owner: 'alice', limits: { quota: 100 } });
  await page.fill('#credential', own.token);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  const quotaRow = page.locator('#tokens tbody tr', { hasText: 'alice-quota' });
  assert.equal(await quotaRow.locator('td.limits').textContent(), 'quota 100');
  await quotaRow.getByRole('button', { name: 'Edit limits' }).click();
  await page.locator('#limits-dialog[open]').waitFor();
  await edit.getByLabel('Quota').fill('1000');
  await page.click('#limits-save');
  await page.locator('#limits-error', { hasText: 'your own limits allow at most: quota 100' }).waitFor();
  assert.deepEqual((await adminGet('/v1/tokens/' + aliceQuota.id)).limits, { quota: 100 });
  await edit.getByLabel('Quota').fill('50');
  await page.click('#limits-save');
  await page.locator('#limits-dialog:not([open])').waitFor({ state: 'attached' });
  await quotaRow.locator('td.limits', { hasText: 'quota 50' }).waitFor();
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();
  assert.deepEqual(failures, [], 'no script errors in the page');
  console.log('tokens page: all checks passed');
} finally {
  await browser.close();
}
