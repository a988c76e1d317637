// Drives the Tokens page in headless Chromium: sign in, create a token and see it once, see it
// masked in the table, check it works through the proxy, revoke it with a typed-name
// confirmation (it stops working through the proxy), delete it.
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
  page.on('console', (m) => { if (m.type() === 'error') failures.push(m.text()); });

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
  assert.equal(await proxyStatus(secret), 401, 'the revoked token stops working through the proxy');
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT + '-revoked.png' });

  // Delete (only offered once revoked).
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  await page.fill('#confirm-input', 'browser-token');
  await page.click('#confirm-ok');
  await row.waitFor({ state: 'detached' });

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
  assert.deepEqual(failures, [], 'no script errors in the page');
  console.log('tokens page: all checks passed');
} finally {
  await browser.close();
}
