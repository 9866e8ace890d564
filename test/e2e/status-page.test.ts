import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserTestsEnabled, launchChromium, type Browser } from '../hosts/browser/support.ts';
import { REPO_ROOT, rateLimiterEntry, sendMessage, startGateway, type RunningGateway } from './support/gateway-process.ts';

const TOKEN = 'status-page-token-7f3a9c21';
const FLOODER = 'Flooder@Example.com';
/** Kept by CI as the test's artifact: the page under a flood. */
export const SCREENSHOT = join(REPO_ROOT, 'test-artifacts/status-page.png');

const enabled = browserTestsEnabled();

describe.skipIf(!enabled)('the status page in a real browser', () => {
  let gateway: RunningGateway;
  let browser: Browser;

  beforeAll(async () => {
    gateway = await startGateway({
      channels: { http: { host: '127.0.0.1', port: 0, admin_token: TOKEN } },
      plugins: [rateLimiterEntry({ by_user: '5/m', by_tool: { echo: { rate: '1/m', shadow: true } }, block: { after: 3, durations: ['10m'] } })],
    });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  it('refuses a wrong token, then shows a flood, finds the flooder and resets them', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();

    // Not signed in: the page sends the browser to the login form.
    await page.goto(`${gateway.url}/v1/admin/status`);
    expect(page.url()).toContain('/v1/admin/login');
    await page.locator('#token').fill('not-the-token');
    await page.locator('button[type=submit]').click();
    await page.locator('.problem').waitFor();
    expect(await page.locator('.problem').textContent()).toBe('That is not the admin token.');
    expect((await context.cookies()).map((c) => c.name)).not.toContain('fg_admin');

    await page.locator('#token').fill(TOKEN);
    await page.locator('button[type=submit]').click();
    await page.waitForURL(/\/v1\/admin\/status$/);
    expect(page.url()).not.toContain(TOKEN);
    const session = (await context.cookies()).find((c) => c.name === 'fg_admin');
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(session!.value).not.toContain(TOKEN);
    await page.waitForFunction(`document.getElementById('backend').textContent === 'memory'`);

    // A flood: the refusal count and its line on the chart move while it goes on.
    expect(await page.locator('#refused-total').textContent()).toBe('0');
    const flood = (async () => {
      for (let i = 0; i < 40; i++) {
        await sendMessage(gateway.url, { user_id: FLOODER, text: i % 2 ? `/echo ${i}` : `message ${i}` });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await page.waitForFunction(`Number(document.getElementById('refused-rate').textContent) > 0`, undefined, { timeout: 15_000 });
    const points = (await page.locator('#refused-line').getAttribute('points')) ?? '';
    // Some point of the refused line is above the chart's floor (y = 100).
    expect(points.split(' ').some((p) => Number(p.split(',')[1]) < 99)).toBe(true);
    await flood;
    await page.waitForFunction(`Number(document.getElementById('refused-total').textContent) >= 30`, undefined, { timeout: 15_000 });
    // Still sending after being refused: the flooder is blocked, and the page counts it.
    expect(await page.locator('#blocks-started').textContent()).toBe('1');
    expect(await page.locator('#blocks-held').textContent()).toBe('1');
    const top = (await page.locator('#top').textContent()) ?? '';
    expect(top).toMatch(/^[0-9a-f]{16}\d+$/);
    const rules = (await page.locator('#rules').textContent()) ?? '';
    expect(rules).toContain('user');
    mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Look the flooder up: their window is used up.
    await page.locator('#lookup-user').fill(FLOODER);
    await page.locator('#lookup-form button[type=submit]').click();
    await page.locator('#lookup-result').waitFor();
    const before = (await page.locator('#lookup-rules').textContent()) ?? '';
    expect(before).toMatch(/^user5\/m50/);
    expect(before).toMatch(/user blockblocked, level 1\d+ strikes(10|9) min/);

    // Reset, confirmed: the window is whole again and the flooder is admitted.
    await page.locator('#reset-button').click();
    await page.locator('#reset-confirm').waitFor();
    await page.locator('#reset-yes').click();
    await page.waitForFunction(`document.getElementById('lookup-message').textContent.startsWith('Reset:')`);
    const after = (await page.locator('#lookup-rules').textContent()) ?? '';
    expect(after).toMatch(/^user5\/m05/);
    expect(after).toContain('user blocknot blocked0 strikes');
    expect((await sendMessage(gateway.url, { user_id: FLOODER, text: 'back again' })).status).toBe(200);

    // The page never showed the flooder's id (the operator typed it into the form only).
    const shown = await page.locator('main').textContent();
    expect(shown?.toLowerCase()).not.toContain('flooder@example.com');
  }, 90_000);

  it('stays readable on a phone: nothing wider than the screen', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.goto(`${gateway.url}/v1/admin/login?next=%2Fv1%2Fadmin%2Fstatus`);
    await page.locator('#token').fill(TOKEN);
    await page.locator('button[type=submit]').click();
    await page.waitForURL(/\/v1\/admin\/status$/);
    await page.waitForFunction(`document.getElementById('backend').textContent === 'memory'`);
    expect(await page.waitForFunction(`document.documentElement.scrollWidth <= window.innerWidth`, undefined, { timeout: 5_000 })).toBeTruthy();
    await page.screenshot({ path: join(REPO_ROOT, 'test-artifacts/status-page-phone.png'), fullPage: true });
  });

  it('serves its data only to a session or the bearer token, and never logs the token', async () => {
    const anonymous = await fetch(`${gateway.url}/v1/admin/status/data`);
    expect(anonymous.status).toBe(401);
    const bearer = await fetch(`${gateway.url}/v1/admin/status/data`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(bearer.status).toBe(200);
    expect(await bearer.json()).toMatchObject({ backend: 'memory', breaker: 'closed' });
    const forged = await fetch(`${gateway.url}/v1/admin/status/data`, { headers: { cookie: 'fg_admin=made-up-session' } });
    expect(forged.status).toBe(401);
    const logs = [...gateway.stdout, ...gateway.stderr].join('\n');
    expect(logs).not.toContain(TOKEN);
    expect(logs.toLowerCase()).not.toContain('flooder@example.com');
  });
});
