// The person's side of `tokengate login`: opens the verification URL the CLI printed, signs in
// at the provider's login form and confirms the device code (oidc-provider's own pages).
//
// Env: VERIFICATION_URL, LOGIN (account name), CHROMIUM.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(process.env.VERIFICATION_URL);
  // The provider's pages, in whatever order it shows them: confirm the code, sign in, consent.
  for (let step = 0; step < 8; step++) {
    const text = await page.locator('body').innerText();
    if (/success/i.test(text)) {
      console.log('device sign-in: confirmed');
      process.exit(0);
    }
    if (await page.locator('input[name="login"]').count()) {
      await page.fill('input[name="login"]', process.env.LOGIN || 'alice');
      await page.fill('input[name="password"]', 'anything');
    }
    const submit = page.locator('button[type="submit"], input[type="submit"]').first();
    assert.ok(await submit.count(), 'a form to submit at step ' + step + ': ' + text.slice(0, 300));
    await Promise.all([page.waitForLoadState('load'), submit.click()]);
    await page.waitForTimeout(200);
  }
  assert.fail('the device sign-in did not finish: ' + (await page.locator('body').innerText()).slice(0, 300));
} finally {
  await browser.close();
}
