// Signing in through an auth proxy's trusted headers in Chromium (the headers an oauth2-proxy
// or Pomerium in front would add): the page recognises the person without any key, creates a
// token through its form (the CSRF header sent), and the token works through the proxy. With
// EXPECT_REFUSED set, the listener does not trust this peer: the page shows the refusal.
//
// Env: ADMIN_URL, PROXY_URL, CHROMIUM, EXPECT_REFUSED.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { ADMIN_URL, PROXY_URL, EXPECT_REFUSED } = process.env;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({
    extraHTTPHeaders: { 'X-Forwarded-User': 'tess', 'X-Forwarded-Email': 'tess@example.com', 'X-Forwarded-Groups': 'engineering' },
  });
  const page = await context.newPage();
  await page.goto(ADMIN_URL + '/');
  if (EXPECT_REFUSED) {
    await page.getByText('accepted only from the configured auth proxies').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#app').isHidden(), true);
    console.log('headers sign-in: refused from an untrusted peer');
  } else {
    await page.getByText('Signed in as tess (tess)').waitFor({ timeout: 10000 });
    await page.fill('#create-name', 'via-auth-proxy');
    await page.click('#create-form button[type="submit"]');
    await page.locator('#created-dialog[open]').waitFor();
    const secret = (await page.locator('#new-token').innerText()).trim();
    const r = await fetch(PROXY_URL + '/hello', { headers: { authorization: 'Bearer ' + secret } });
    assert.equal(r.status, 200);
    const echoed = Object.fromEntries((await r.json()).headers);
    assert.equal(echoed['x-auth-subject'], 'tess');
    console.log('headers sign-in: all checks passed');
  }
} finally {
  await browser.close();
}
