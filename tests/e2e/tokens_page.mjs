// Drives the Tokens page in headless Chromium: sign in, create a token and see it once, see it
// masked in the table, check it works through the proxy, revoke it with a typed-name
// confirmation (it stops working through the proxy), delete it; create a token with limits,
// see them in the table and through the proxy, edit them in a dialog; bad limits store nothing;
// a person may set their own tokens' limits only within their own (set by an operator).
// Then the page grown up: a wrong key is "not accepted"; the create form's picker offers only
// what the caller holds (operators: the configured roles and the route rules' scopes); an
// organization admin creates an organization token; rotation with a grace period (the old
// secret keeps working through the proxy); the detail view shows the last use and its client
// address; the audit view and its filters; errors clear once something succeeds; a name made of
// HTML stays text; buttons are named after their token; at 390 px nothing scrolls sideways and
// the secret's dialog fits; the dark theme applies. SCREENSHOT (a path prefix) writes
// <prefix>-light.png, -dark.png, -390.png and -390-secret.png.
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

async function adminPost(path, body, expected = 201) {
  const r = await fetch(ADMIN_URL + path, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + ADMIN_KEY, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(r.status, expected, path);
  return r.json();
}

async function signIn(page, credential) {
  await page.goto(ADMIN_URL + '/');
  await page.locator('#sign-in').waitFor();
  await page.fill('#credential', credential);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
}

// Watches a page for script errors (API answers of 4xx are logged by Chromium and expected).
function watch(page, failures) {
  page.on('pageerror', (e) => failures.push(e.message));
  const apiAnswer = (m) => m.text().startsWith('Failed to load resource') && new URL(m.location().url).pathname.startsWith('/v1/');
  page.on('console', (m) => { if (m.type() === 'error' && !apiAnswer(m)) failures.push(m.text()); });
}

const picked = (page, id) => page.$$eval('#' + id + ' input[type=checkbox]', (bs) => bs.map((b) => b.value));

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  watch(page, failures);

  await page.goto(ADMIN_URL + '/');
  await page.locator('#sign-in').waitFor();
  await page.fill('#credential', ADMIN_KEY);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#who'), 'Signed in with the admin key ops');
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
  // A wrong key at sign-in is "not accepted", not "no longer valid".
  await page.fill('#credential', 'not-a-key-0123456789');
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#sign-in-error:not(:empty)').waitFor();
  const refused = await page.textContent('#sign-in-error');
  assert.match(refused, /not accepted/);
  assert.doesNotMatch(refused, /no longer valid/);
  assert.equal(await page.isVisible('#app'), false);

  // The operator's picker: the configured roles (default ones ticked), the route rules' scopes;
  // organization tokens offered; the audit log offered.
  await page.fill('#credential', ADMIN_KEY);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#sign-in-error'), '', 'the refusal is gone once signed in');
  assert.deepEqual(await picked(page, 'create-roles'), ['viewer', 'developer', 'admin']);
  assert.deepEqual(await page.$$eval('#create-roles input:checked', (bs) => bs.map((b) => b.value)), ['viewer']);
  assert.deepEqual(await picked(page, 'create-scopes'), ['env:prod']);
  assert.equal(await page.isVisible('#kind-field'), true);
  assert.equal(await page.isVisible('#show-audit'), true);

  // A name made of HTML is shown as text, never as markup (in the table, the detail view, the
  // confirmation and the audit log).
  const hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>';
  await page.fill('#create-name', hostile);
  await page.fill('#create-owner', 'alice');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  await page.click('#close-created');
  const hostileRow = page.locator('#tokens tbody tr', { hasText: 'window.pwned=2' });
  await hostileRow.waitFor();
  assert.equal(await hostileRow.locator('td.name').textContent(), hostile);
  assert.equal(await page.locator('#tokens tbody img, #tokens tbody script, #tokens tbody b').count(), 0, 'no markup from a name');
  await hostileRow.getByRole('button', { name: 'Details of ' + hostile, exact: true }).click();
  await page.locator('#detail-dialog[open]').waitFor();
  assert.equal(await page.textContent('#detail-title'), hostile);
  await page.click('#detail-close');
  await hostileRow.getByRole('button', { name: 'Revoke ' + hostile, exact: true }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  assert.equal(await page.textContent('#confirm-name'), hostile);
  assert.equal(await page.locator('#confirm-dialog img, #confirm-dialog script').count(), 0);
  await page.keyboard.press('Escape');
  await page.locator('#confirm-dialog:not([open])').waitFor({ state: 'attached' });
  assert.equal(await page.evaluate(() => window.pwned), undefined, 'nothing from a name ran');

  // Rotate with a grace period, in a dialog: the old secret keeps working through the proxy.
  await page.fill('#create-name', 'rotating');
  await page.fill('#create-owner', 'alice');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  const rot1 = (await page.textContent('#new-token')).trim();
  await page.click('#close-created');
  const rotRow = page.locator('#tokens tbody tr', { hasText: 'rotating' });
  await rotRow.waitFor();
  assert.equal(await proxyStatus(rot1), 200);
  await page.getByRole('button', { name: 'Rotate rotating', exact: true }).click();
  await page.locator('#rotate-dialog[open]').waitFor();
  assert.equal(await page.textContent('#rotate-title'), 'Rotate "rotating"');
  await page.selectOption('#rotate-grace', '3600');
  await page.click('#rotate-ok');
  await page.locator('#created-dialog[open]').waitFor();
  const rot2 = (await page.textContent('#new-token')).trim();
  assert.notEqual(rot2, rot1);
  assert.equal(await page.textContent('#created-title'), 'New secret for "rotating"');
  assert.match(await page.textContent('#created-note'), /^The previous secret keeps working until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\.$/);
  await page.click('#close-created');
  assert.equal(await proxyStatus(rot2), 200, 'the new secret works');
  assert.equal(await proxyStatus(rot1), 200, 'the old secret works during the grace period');
  const rotId = await rotRow.getAttribute('data-id');
  assert.ok((await adminGet('/v1/tokens/' + rotId)).previous_secret_valid_until);
  // Without a grace period the replaced secret stops at once.
  await page.getByRole('button', { name: 'Rotate rotating', exact: true }).click();
  await page.locator('#rotate-dialog[open]').waitFor();
  await page.selectOption('#rotate-grace', '0');
  await page.click('#rotate-ok');
  await page.locator('#created-dialog[open]').waitFor();
  const rot3 = (await page.textContent('#new-token')).trim();
  assert.equal(await page.textContent('#created-note'), 'The previous secret no longer works.');
  await page.click('#close-created');
  assert.equal(await proxyStatusBecomes(rot2, 401), 401, 'no grace: the replaced secret is refused');
  assert.equal(await proxyStatusBecomes(rot1, 401), 401);
  assert.equal(await proxyStatus(rot3), 200);

  // The detail view: the last use's time and client address (recorded by the proxy).
  let used;
  for (let i = 0; i < 100; i++) {
    used = await adminGet('/v1/tokens/' + rotId);
    if (used.last_used_at) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(used.last_used_at, 'the use was recorded');
  assert.match(used.last_used_from, /127\.0\.0\.1/);
  await page.getByRole('button', { name: 'Details of rotating', exact: true }).click();
  await page.locator('#detail-dialog[open]').waitFor();
  const detail = (field) => page.locator('#detail-list dd[data-field="' + field + '"]').textContent();
  await page.locator('#detail-list dd').first().waitFor();
  assert.equal(await detail('Id'), rotId);
  assert.match(await detail('Last used'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((just now|\d+ minutes? ago)\)$/);
  assert.equal(await detail('Last client address'), used.last_used_from);
  assert.equal(await detail('Roles'), 'viewer');
  await page.click('#detail-close');

  // A failed action's error goes away once something succeeds.
  await page.fill('#create-name', 'orphan');
  await page.fill('#create-owner', 'nobody');
  await page.click('#create-form button[type=submit]');
  await page.locator('#create-error:not(:empty)').waitFor();
  assert.match(await page.textContent('#create-error'), /^owner: no principal/);
  await page.getByRole('button', { name: 'Suspend rotating', exact: true }).click();
  await rotRow.locator('.badge', { hasText: 'suspended' }).waitFor();
  assert.equal(await page.textContent('#create-error'), '', 'a success clears the earlier failure');
  // The row is stale once revoked elsewhere: activating it fails, and the next success clears that.
  await adminPost('/v1/tokens/' + rotId + '/revoke', undefined, 200);
  await page.getByRole('button', { name: 'Activate rotating', exact: true }).click();
  await page.locator('#list-error:not(:empty)').waitFor();
  await page.fill('#create-name', 'after-failure');
  await page.fill('#create-owner', 'alice');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  await page.click('#close-created');
  assert.equal(await page.textContent('#list-error'), '', 'a success clears the failed action');
  assert.equal(await page.textContent('#create-error'), '');

  // The audit log: who did what to which token, filtered by token, actor and action.
  await page.click('#show-audit');
  await page.locator('#audit tbody tr').first().waitFor();
  assert.equal(await page.isVisible('#tokens-view'), false);
  const auditRows = () => page.$$eval('#audit tbody tr', (rs) => rs.map((r) => [...r.children].map((c) => c.textContent)));
  await page.fill('#audit-token', 'rotating');
  let rows = await auditRows();
  assert.deepEqual(rows.map((r) => r[2]), ['revoke', 'suspend', 'rotate', 'rotate', 'create'], 'newest first, this token only');
  assert.ok(rows.every((r) => r[1] === 'key:ops' && r[3] === 'rotating ' + rotId && r[4] === 'alice'));
  await page.selectOption('#audit-action', 'rotate');
  assert.equal((await auditRows()).length, 2);
  await page.fill('#audit-token', rotId);
  assert.equal((await auditRows()).length, 2, 'a token id filters too');
  await page.fill('#audit-token', '');
  await page.selectOption('#audit-action', 'limits');
  await page.selectOption('#audit-actor', 'alice');
  rows = await auditRows();
  assert.deepEqual(rows.map((r) => [r[1], r[2], r[3].split(' ')[0]]), [['alice', 'limits', 'alice-quota']]);
  assert.match(await page.textContent('#audit-count'), /^1 of \d+ events$/);
  const actors = await page.$$eval('#audit-actor option', (os) => os.map((o) => o.value));
  assert.deepEqual(actors, ['', 'alice', 'key:ops']);
  await page.selectOption('#audit-actor', '');
  await page.selectOption('#audit-action', '');
  await page.fill('#audit-token', 'pwned=2');
  rows = await auditRows();
  assert.deepEqual(rows.map((r) => [r[2], r[3].split(' ').slice(0, -1).join(' ')]), [['create', hostile]], 'a name made of HTML is text here too');
  assert.equal(await page.locator('#audit img, #audit script, #audit b').count(), 0);
  await page.fill('#audit-token', '');

  // People: every principal, with their roles, groups, admin role and status; a find box.
  await page.click('#show-people');
  await page.locator('#people tbody tr').first().waitFor();
  assert.equal(await page.isVisible('#audit-view'), false);
  const peopleRows = () => page.$$eval('#people tbody tr', (rs) => rs.map((r) => [...r.children].map((c) => c.textContent)));
  const everyone = await peopleRows();
  assert.ok(everyone.some((r) => r[0] === 'alice' && r[4].includes('viewer') && r[7] === 'active'), JSON.stringify(everyone));
  await page.fill('#people-filter', 'ALICE');
  assert.deepEqual((await peopleRows()).map((r) => r[0]), ['alice'], 'the find box ignores case');
  assert.match(await page.textContent('#people-count'), /^1 of \d+ people$/);
  await page.fill('#people-filter', '');
  await page.click('#show-tokens');
  await page.locator('#tokens-view').waitFor();
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();

  // A person's picker offers only what their token holds; no Owner field, no organization
  // tokens, no audit log. Buttons are named after their token.
  await adminPut('/v1/principals/bob', { display_name: 'Bob', org: 'acme', roles: ['viewer', 'developer'] });
  const bobKey = await adminPost('/v1/tokens', { name: 'bob-sign-in', expires_in_days: 30, owner: 'bob', roles: ['viewer'], scopes: ['env:prod'] });
  await page.fill('#credential', bobKey.token);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#who'), 'Signed in as Bob (bob)');
  assert.deepEqual(await picked(page, 'create-roles'), ['viewer'], 'only the roles the token holds');
  assert.deepEqual(await picked(page, 'create-scopes'), ['env:prod'], 'only the scopes the token holds');
  assert.equal(await page.isVisible('#owner-field'), false, 'no Owner field for people');
  assert.equal(await page.isVisible('#create-owner'), false);
  assert.equal(await page.isVisible('#kind-field'), false, 'no organization tokens for a non-admin');
  assert.equal(await page.isVisible('#show-audit'), false, 'no audit log for people');
  assert.equal(await page.isVisible('#show-people'), false, 'no list of people for people');
  await page.fill('#create-name', 'laptop');
  await page.locator('#create-scopes input[value="env:prod"]').check();
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  await page.click('#close-created');
  const laptop = page.locator('#tokens tbody tr', { hasText: 'laptop' });
  await laptop.waitFor();
  const laptopView = await adminGet('/v1/tokens/' + (await laptop.getAttribute('data-id')));
  assert.deepEqual([laptopView.owner, laptopView.roles, laptopView.scopes], ['bob', ['viewer'], ['env:prod']]);
  assert.equal(await page.getByRole('button', { name: 'Revoke laptop', exact: true }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Rotate laptop', exact: true }).count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Edit limits of laptop', exact: true }).count(), 1);
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();

  // A person whose session names an admin role of auditor (or operator) is offered the audit
  // log; a session without the field offers none (above). The server decides what they read.
  await page.route('**/v1/session', async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    json.caller.admin = 'auditor';
    await route.fulfill({ response, json });
  });
  await page.fill('#credential', bobKey.token);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.isVisible('#show-audit'), true, 'auditors are offered the audit log');
  await page.click('#show-audit');
  await page.locator('#audit-view').waitFor();
  await page.unroute('**/v1/session');
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();

  // An organization admin creates an organization token, which works through the proxy.
  await adminPut('/v1/principals/olga', { display_name: 'Olga', org: 'acme', roles: ['admin', 'viewer'] });
  const olgaKey = await adminPost('/v1/tokens', { name: 'olga-sign-in', expires_in_days: 30, owner: 'olga', roles: ['admin', 'viewer'] });
  await page.fill('#credential', olgaKey.token);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.isVisible('#kind-field'), true, 'organization tokens for its admin');
  assert.equal(await page.isVisible('#owner-field'), false);
  assert.deepEqual(await picked(page, 'create-roles'), ['admin', 'viewer']);
  await page.getByLabel('Organization', { exact: true }).check();
  assert.match(await page.textContent('#org-note'), /organization acme/);
  await page.locator('#create-roles input[value=admin]').uncheck();
  await page.locator('#create-roles input[value=viewer]').check();
  await page.fill('#create-name', 'acme-nightly');
  await page.click('#create-form button[type=submit]');
  await page.locator('#created-dialog[open]').waitFor();
  const orgSecret = (await page.textContent('#new-token')).trim();
  assert.match(orgSecret, /^tgo_/);
  await page.click('#close-created');
  const orgRow = page.locator('#tokens tbody tr', { hasText: 'acme-nightly' });
  await orgRow.waitFor();
  assert.equal(await page.inputValue('#owner-filter'), 'acme', 'the list shows the organization the new token is in');
  assert.equal(await page.locator('#tokens tbody tr', { hasText: 'olga-sign-in' }).count(), 0);
  await page.selectOption('#owner-filter', '');
  await page.locator('#tokens tbody tr', { hasText: 'olga-sign-in' }).waitFor();
  assert.equal(await orgRow.count(), 0, 'one list at a time');
  await page.selectOption('#owner-filter', 'acme');
  await orgRow.waitFor();
  const orgView = await adminGet('/v1/tokens/' + (await orgRow.getAttribute('data-id')));
  assert.deepEqual([orgView.kind, orgView.owner, orgView.roles, orgView.created_by], ['organization', 'acme', ['viewer'], 'olga']);
  assert.equal(await proxyStatus(orgSecret), 200, 'the organization token works through the proxy');
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor();

  // Light theme, for the screenshot.
  const light = await browser.newContext({ viewport: { width: 1280, height: 1000 }, colorScheme: 'light' });
  const lightPage = await light.newPage();
  watch(lightPage, failures);
  await signIn(lightPage, ADMIN_KEY);
  await lightPage.locator('#tokens tbody tr').first().waitFor();
  assert.equal(await lightPage.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(246, 247, 249)');
  if (SCREENSHOT) await lightPage.screenshot({ path: SCREENSHOT + '-light.png' });
  await light.close();

  // Dark theme: the colors actually change.
  const dark = await browser.newContext({ viewport: { width: 1280, height: 1000 }, colorScheme: 'dark' });
  const darkPage = await dark.newPage();
  watch(darkPage, failures);
  await signIn(darkPage, ADMIN_KEY);
  await darkPage.locator('#tokens tbody tr').first().waitFor();
  assert.equal(await darkPage.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(18, 21, 27)');
  assert.equal(await darkPage.evaluate(() => getComputedStyle(document.querySelector('#tokens')).backgroundColor), 'rgb(27, 31, 39)');
  assert.equal(await darkPage.evaluate(() => getComputedStyle(document.body).color), 'rgb(230, 233, 239)');
  if (SCREENSHOT) await darkPage.screenshot({ path: SCREENSHOT + '-dark.png' });
  await dark.close();

  // 390 px wide (a phone): rows become cards, nothing scrolls sideways, the secret's dialog fits.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const phonePage = await phone.newPage();
  watch(phonePage, failures);
  await signIn(phonePage, ADMIN_KEY);
  await phonePage.locator('#tokens tbody tr').first().waitFor();
  const width = () => phonePage.evaluate(() => [document.documentElement.scrollWidth, document.body.scrollWidth]);
  assert.ok((await width()).every((w) => w <= 390), 'no horizontal overflow at 390 px: ' + (await width()));
  if (SCREENSHOT) {
    await phonePage.locator('.toolbar').first().evaluate((e) => e.scrollIntoView());
    await phonePage.screenshot({ path: SCREENSHOT + '-390.png' });
    await phonePage.evaluate(() => window.scrollTo(0, 0));
  }
  await phonePage.locator('#create-limits-part summary').click();
  assert.ok((await width()).every((w) => w <= 390), 'nor with the limits open: ' + (await width()));
  await phonePage.locator('#create-limits-part summary').click();
  await phonePage.fill('#create-name', 'phone-token');
  await phonePage.fill('#create-owner', 'alice');
  await phonePage.click('#create-form button[type=submit]');
  await phonePage.locator('#created-dialog[open]').waitFor();
  const box = await phonePage.locator('#created-dialog').boundingBox();
  assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= 390 && box.y + box.height <= 844, 'the secret dialog is inside the viewport: ' + JSON.stringify(box));
  const copyBox = await phonePage.locator('#close-created').boundingBox();
  assert.ok(copyBox.x + copyBox.width <= 390 && copyBox.y + copyBox.height <= 844, 'its button too');
  if (SCREENSHOT) await phonePage.screenshot({ path: SCREENSHOT + '-390-secret.png' });
  await phonePage.click('#close-created');
  for (const [view, rows] of [['#show-audit', '#audit tbody tr'], ['#show-people', '#people tbody tr']]) {
    await phonePage.click(view);
    await phonePage.locator(rows).first().waitFor();
    assert.ok((await width()).every((w) => w <= 390), view + ' at 390 px: ' + (await width()));
  }
  await phonePage.click('#show-tokens');
  await phonePage.getByRole('button', { name: 'Details of rotating', exact: true }).click();
  await phonePage.locator('#detail-list dd').first().waitFor();
  const fits = async (id) => {
    const b = await phonePage.locator(id).boundingBox();
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= 390 && b.y + b.height <= 844, id + ' fits at 390 px: ' + JSON.stringify(b));
  };
  await fits('#detail-dialog');
  await phonePage.click('#detail-close');
  await phonePage.getByRole('button', { name: 'Edit limits of phone-token', exact: true }).click();
  await phonePage.locator('#limits-dialog[open]').waitFor();
  await fits('#limits-dialog');
  await phonePage.click('#limits-cancel');
  await phonePage.getByRole('button', { name: 'Rotate phone-token', exact: true }).click();
  await phonePage.locator('#rotate-dialog[open]').waitFor();
  await fits('#rotate-dialog');
  await phonePage.click('#rotate-cancel');
  await phonePage.getByRole('button', { name: 'Revoke phone-token', exact: true }).click();
  await phonePage.locator('#confirm-dialog[open]').waitFor();
  await fits('#confirm-dialog');
  await phonePage.keyboard.press('Escape');
  assert.ok((await width()).every((w) => w <= 390), 'still no horizontal overflow: ' + (await width()));
  await phone.close();
  assert.deepEqual(failures, [], 'no script errors in the page');
  console.log('tokens page: all checks passed');
} finally {
  await browser.close();
}
