import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_CLOCK_ENV } from '../../src/test-clock.ts';
import { gatewayConfig, rateLimiterEntry, sendMessage, spawnGateway, startGateway, waitForLog, writeConfig, type RunningGateway } from './support/gateway-process.ts';

const TOKEN = 'operator-token-0123456789';

let gateway: RunningGateway | undefined;
let dir: string | undefined;
afterEach(async () => {
  await gateway?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  gateway = dir = undefined;
});

/** The gateway's time, as its test clock file says it (written whole: a temporary file, then a rename). */
function setClock(file: string, iso: string): void {
  writeFileSync(`${file}.next`, iso);
  renameSync(`${file}.next`, file);
}

function clockFile(iso: string): string {
  dir = mkdtempSync(join(tmpdir(), 'floodgate-clock-'));
  const file = join(dir, 'now');
  setClock(file, iso);
  return file;
}

interface Row {
  rule: string;
  used: number;
  remaining: number;
  reset_after: number;
  time_zone?: string;
  resets_at?: string;
}

async function tenantTokens(url: string): Promise<Row> {
  const query = new URLSearchParams({ user_id: 'alice', tenant_id: 'acme' });
  const response = await fetch(`${url}/v1/admin/limits?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(response.status).toBe(200);
  const view = (await response.json()) as { rules: Row[] };
  return view.rules.find((r) => r.rule === 'tenant-tokens')!;
}

describe('a monthly token budget per tenant, through the real gateway on a test clock', () => {
  it("refuses until Berlin's month turns (2026-12-31T23:00Z), then the whole budget is back", async () => {
    const file = clockFile('2026-12-31T22:59:00Z');
    const config = gatewayConfig([rateLimiterEntry({ by_tenant: { tokens: '250/calendar_month' }, time_zone: 'Europe/Berlin' })]);
    (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
    gateway = await startGateway(config, { [TEST_CLOCK_ENV]: file });
    const { url } = gateway;
    expect(await waitForLog(gateway, 'test clock in use')).toMatchObject({ level: 40, file });

    // 400 characters: an estimate of 200 tokens (prompt and an answer as long) fits the 250 once; what
    // the call reports then (at least its prompt's 100) leaves too little for a second estimate.
    const text = 'x'.repeat(400);
    const first = await sendMessage(url, { user_id: 'alice', tenant_id: 'acme', text });
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('"tenant-tokens";q=250;w=2678400;qu="tokens"');
    const used = await tenantTokens(url);
    expect(used).toMatchObject({ time_zone: 'Europe/Berlin', resets_at: '2026-12-31T23:00:00.000Z' });
    expect(used.used).toBeGreaterThanOrEqual(100);

    const refused = await sendMessage(url, { user_id: 'alice', tenant_id: 'acme', text });
    expect(refused.status).toBe(429);
    // Until Berlin's midnight, less than a minute away on the gateway's clock: not a whole month.
    const retryAfter = refused.body.retry_after as number;
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get('retry-after')).toBe(String(retryAfter));
    expect(refused.body.reply).not.toContain('acme');

    // Midnight in Berlin (still 2026 in UTC): January, with the whole budget.
    setClock(file, '2026-12-31T23:00:01Z');
    const fresh = await tenantTokens(url);
    expect(fresh).toMatchObject({ used: 0, remaining: 250, resets_at: '2027-01-31T23:00:00.000Z' });
    const admitted = await sendMessage(url, { user_id: 'alice', tenant_id: 'acme', text });
    expect(admitted.status).toBe(200);
    // The same estimate reserved from the whole budget again, as in December's first message.
    expect(admitted.headers.get('x-ratelimit-remaining')).toBe(first.headers.get('x-ratelimit-remaining'));
    // About 31 days to February 1st 00:00 CET.
    expect(Math.abs(Number(admitted.headers.get('x-ratelimit-reset')) - 31 * 86_400)).toBeLessThan(60);
    // Another tenant was never charged in December either.
    expect((await sendMessage(url, { user_id: 'bob', tenant_id: 'other', text })).status).toBe(200);
  });

  it('a test clock is refused under NODE_ENV=production: the gateway does not start', async () => {
    const file = clockFile('2026-12-31T22:59:00Z');
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '10/calendar_day' })]));
    const { stderr, exited } = spawnGateway(path, { [TEST_CLOCK_ENV]: file, NODE_ENV: 'production' });
    expect(await exited).toBe(2);
    rmSync(dirname(path), { recursive: true, force: true });
    expect(stderr.join('\n')).toContain(`${TEST_CLOCK_ENV} is set, and a test clock never runs with NODE_ENV=production`);
  });
});
