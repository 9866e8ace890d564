import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CalendarPeriods } from '../../../plugins/rate-limiter/calendar/periods.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { RateLimiter } from '../../../plugins/rate-limiter/rate-limiter.ts';
import { ManualClock, systemClock } from '../../../src/clock.ts';
import type { HookResult, Violation } from '../../../src/hooks/schemas.ts';
import { createLogger, IdentityHasher } from '../../../src/logger.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { CapturedLog } from './helpers.ts';
import { startHarness, type Harness } from './plugin-harness.ts';

const at = (iso: string) => Date.parse(iso);
const enabled = redisTestsEnabled();

function headersOf(result: HookResult): Record<string, string> {
  if (!result.continue) throw new Error(`expected an admission, got ${JSON.stringify(result)}`);
  return result.headers ?? {};
}

function violationOf(result: HookResult): Violation {
  if (result.continue) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result.violation;
}

interface Row {
  rule: string;
  limit: string;
  unit: string;
  used: number;
  remaining: number;
  reset_after: number;
  time_zone?: string;
  resets_at?: string;
}

async function row(harness: Harness, rule: string, tenant?: string): Promise<Row> {
  const view = (await harness.limits(tenant === undefined ? {} : { tenant_id: tenant })) as { rules: Row[] };
  const found = view.rules.find((r) => r.rule === rule);
  if (found === undefined) throw new Error(`no row ${rule} in ${JSON.stringify(view)}`);
  return found;
}

describe('a monthly token budget per tenant, on an injected clock (memory)', () => {
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  it("headers, the refusal and the admin view count to Berlin's month boundary, and the budget is whole after it", async () => {
    const clock = new ManualClock(at('2026-12-31T22:00:00Z'));
    harness = await startHarness({ by_tenant: { tokens: '1000/calendar_month' }, time_zone: 'Europe/Berlin' }, clock);
    const h = harness;

    const admitted = headersOf(await h.prompt({ tenant: 'acme', estimatedTokens: 600 }));
    // One hour to midnight in Berlin (23:00 UTC); December has 31 days.
    expect(admitted).toEqual({
      'X-RateLimit-Limit': '1000',
      'X-RateLimit-Remaining': '400',
      'X-RateLimit-Reset': '3600',
      'RateLimit-Policy': '"tenant-tokens";q=1000;w=2678400;qu="tokens"',
      RateLimit: '"tenant-tokens";r=400;t=3600',
    });

    clock.set(at('2026-12-31T22:30:00Z'));
    const refused = violationOf(await h.prompt({ tenant: 'acme', estimatedTokens: 500 }));
    // Retry-After is until the month turns, not a whole window.
    expect(refused).toMatchObject({ code: 'rate_limited', httpStatus: 429, retryAfter: 1800 });
    expect(refused.headers).toMatchObject({ 'Retry-After': '1800', 'X-RateLimit-Remaining': '400', 'X-RateLimit-Reset': '1800' });
    expect(refused.details).toEqual({ rule: 'tenant', window: 'calendar_month', limit: '1000/calendar_month' });
    expect(refused.description).toBe("You're sending messages a little too fast. Please wait 30 minutes and try again.");

    expect(await row(h, 'tenant-tokens', 'acme')).toEqual({
      rule: 'tenant-tokens',
      limit: '1000/calendar_month',
      unit: 'tokens',
      used: 600,
      remaining: 400,
      reset_after: 1800,
      time_zone: 'Europe/Berlin',
      resets_at: '2026-12-31T23:00:00.000Z',
    });

    // The user's own /limits says it in words.
    expect(await h.command('limits', { tenant: 'acme' })).toContain(
      'Tokens for your whole team: 400 of 1,000 left per calendar month, back to 1,000 in 30 minutes.',
    );

    // Midnight in Berlin, still 2026 in UTC: January has begun, with its whole budget.
    clock.set(at('2026-12-31T23:00:00Z'));
    expect(await row(h, 'tenant-tokens', 'acme')).toMatchObject({ used: 0, remaining: 1000, reset_after: 0, resets_at: '2027-01-31T23:00:00.000Z' });
    expect(headersOf(await h.prompt({ tenant: 'acme', estimatedTokens: 900 }))).toMatchObject({
      'X-RateLimit-Remaining': '100',
      'X-RateLimit-Reset': String(31 * 86_400),
    });

    // February is shorter, and its RateLimit-Policy says so.
    clock.set(at('2027-01-31T23:00:00Z'));
    expect(headersOf(await h.prompt({ tenant: 'acme', estimatedTokens: 1 }))).toMatchObject({
      'RateLimit-Policy': '"tenant-tokens";q=1000;w=2419200;qu="tokens"',
      'X-RateLimit-Remaining': '999',
    });
  });

  it('a calendar day beside a sliding window: each named in the headers, the day turning at local midnight', async () => {
    const clock = new ManualClock(at('2026-03-08T04:59:00Z'));
    harness = await startHarness({ by_user: ['10/m', '2/calendar_day'], time_zone: 'America/New_York' }, clock);
    const h = harness;
    const first = headersOf(await h.prompt());
    expect(first['RateLimit-Policy']).toBe('"user-1m";q=10;w=60, "user-calendar_day";q=2;w=86400');
    // 23:59 on March 7th in New York: the day ends in a minute.
    expect(first.RateLimit).toBe('"user-1m";r=9;t=60, "user-calendar_day";r=1;t=60');
    headersOf(await h.prompt());
    expect(violationOf(await h.prompt()).retryAfter).toBe(60);
    // March 8th, the day DST starts: 23 hours long.
    clock.set(at('2026-03-08T05:00:00Z'));
    const next = headersOf(await h.prompt());
    expect(next['RateLimit-Policy']).toBe('"user-1m";q=10;w=60, "user-calendar_day";q=2;w=82800');
    // The minute-old requests have left the sliding minute.
    expect(next.RateLimit).toBe('"user-1m";r=9;t=60, "user-calendar_day";r=1;t=82800');
  });
});

describe.skipIf(!enabled)('a calendar day on Redis, on the server clock', () => {
  let redis: RedisProcess;
  let harness: Harness | undefined;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await harness?.teardown();
    await redis?.stop();
  });

  it('headers and the admin view say what is left today and when the day ends in Kolkata', async () => {
    harness = await startHarness(
      { by_user: '5/calendar_day', time_zone: 'Asia/Kolkata', backend: 'redis', redis_url: redis.url, redis_key_prefix: 'cl', redis_timeout_ms: 1000 },
      systemClock,
    );
    const h = harness;
    const today = new CalendarPeriods('Asia/Kolkata', 'day').periodAt(Date.now());
    const headers = headersOf(await h.prompt());
    const left = (today.end - Date.now()) / 1000;
    expect(headers['X-RateLimit-Remaining']).toBe('4');
    expect(Math.abs(Number(headers['X-RateLimit-Reset']) - left)).toBeLessThan(5);
    expect(headers['RateLimit-Policy']).toBe(`"user";q=5;w=${(today.end - today.start) / 1000}`);
    const view = await row(h, 'user');
    expect(view).toMatchObject({ limit: '5/calendar_day', used: 1, remaining: 4, time_zone: 'Asia/Kolkata', resets_at: new Date(today.end).toISOString() });
    expect(Math.abs(view.reset_after - left)).toBeLessThan(5);
    for (let i = 0; i < 4; i++) headersOf(await h.prompt());
    const refused = violationOf(await h.prompt());
    expect(Math.abs(refused.retryAfter! - left)).toBeLessThan(5);
    expect(h.log.entries.filter((e) => String(e.msg).includes('redis backend failing'))).toEqual([]);
  });
});

describe('a reload between a sliding day and a calendar day never shares a count', () => {
  it('each window keeps its own keys, a new time zone counts afresh, and a reset clears calendar keys too', async () => {
    const clock = new ManualClock(at('2026-06-15T12:00:00Z'));
    const limiter = await RateLimiter.open(RateLimiterOptions.parse({ by_user: '10/d' }), {
      clock,
      logger: createLogger({ destination: new CapturedLog() }),
      identity: new IdentityHasher('salt'),
      mode: 'enforce',
    });
    const alice = { channel: 'http', user_id: 'alice' };
    const remaining = async () => ((await limiter.view.inspect(alice)) as { rules: Row[] }).rules[0]!.remaining;
    const prompt = async (i: number) => limiter.prompt({ channel: 'http', user: 'alice', callId: `c${i}` });
    for (let i = 0; i < 5; i++) expect((await prompt(i)).continue).toBe(true);
    expect(await remaining()).toBe(5);

    expect(await limiter.reconfigure(RateLimiterOptions.parse({ by_user: '10/calendar_day' }), 'enforce')).toEqual({
      kept: true,
      newWindows: ['user calendar_day UTC', 'tool calendar_day UTC'],
    });
    expect(await remaining()).toBe(10);
    for (let i = 0; i < 3; i++) expect((await prompt(10 + i)).continue).toBe(true);
    expect(await remaining()).toBe(7);

    // Back to the sliding day: its own five are still counted.
    await limiter.reconfigure(RateLimiterOptions.parse({ by_user: '10/d' }), 'enforce');
    expect(await remaining()).toBe(5);

    // The same calendar day in another zone is another window.
    expect(await limiter.reconfigure(RateLimiterOptions.parse({ by_user: '10/calendar_day', time_zone: 'Europe/Berlin' }), 'enforce')).toMatchObject({
      newWindows: ['user calendar_day Europe/Berlin', 'tool calendar_day Europe/Berlin'],
    });
    expect(await remaining()).toBe(10);
    expect((await prompt(20)).continue).toBe(true);
    expect(await remaining()).toBe(9);
    expect(await limiter.view.reset(alice)).toEqual({ reset: true, keys_removed: 3 });
    expect(await remaining()).toBe(10);
    await limiter.close();
  });
});
