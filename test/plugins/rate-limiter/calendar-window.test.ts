import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, type AlgorithmName, type Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { CalendarPeriods } from '../../../plugins/rate-limiter/calendar/periods.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { memoryBackend, redisBackend, type Backend } from './cost-tables.ts';
import { inspector } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

const at = (iso: string) => Date.parse(iso);
const SECOND = 1_000;
const HOUR = 3_600_000;

/** `limit` requests (or tokens) per calendar `unit` in `zone`, as the policy compiles one. */
function calendarRule(limit: number, zone: string, unit: 'day' | 'month', tokens = false): Rule {
  return { limit, windowMs: unit === 'day' ? 86_400_000 : 31 * 86_400_000, calendar: new CalendarPeriods(zone, unit), ...(tokens ? { unit: 'tokens' as const } : {}) };
}

/** A sliding (or fixed, or bucket) rule beside it: 100 per minute, never the one that binds here. */
const PER_MINUTE: Rule = { limit: 100, windowMs: 60_000 };

interface Step {
  at: string;
  /** The tokens charged (tokens rules). */
  cost?: number;
  admitted: boolean;
  retryAfterMs?: number;
  remaining: number;
  resetMs: number;
}

/** Runs decisions of `checks` (the calendar window's result is the last) and compares each with its step. */
async function run(backend: Backend, checks: RuleCheck[], steps: Step[]): Promise<void> {
  const calendar = checks.findIndex((c) => c.rule.calendar !== undefined);
  for (const step of steps) {
    const withCost = checks.map((c) => (c.rule.unit === 'tokens' ? { ...c, cost: step.cost ?? 1 } : c));
    const decision = await backend.decide(withCost, at(step.at));
    const result = decision.results[calendar]!;
    expect({ at: step.at, admitted: decision.allowed, retryAfterMs: decision.retryAfterMs, remaining: result.remaining, resetMs: result.resetMs }).toEqual({
      at: step.at,
      admitted: step.admitted,
      retryAfterMs: step.retryAfterMs ?? 0,
      remaining: step.remaining,
      resetMs: step.resetMs,
    });
  }
}

/** Each scenario runs on memory and on Redis (on the caller's time), under every algorithm, with a per-minute rule before it. */
const SCENARIOS: { name: string; rule: () => Rule; steps: Step[] }[] = [
  {
    name: 'a day in Berlin that DST shortens to 23 hours resets at local midnight',
    rule: () => calendarRule(3, 'Europe/Berlin', 'day'),
    steps: [
      // 2026-03-28 23:59:59 CET: the day before.
      { at: '2026-03-28T22:59:59Z', admitted: true, remaining: 2, resetMs: 1_000 },
      // 2026-03-29 00:00 CET: a new day, which ends at 00:00 CEST on the 30th (22:00 UTC), 23 hours later.
      { at: '2026-03-28T23:00:00Z', admitted: true, remaining: 2, resetMs: 23 * HOUR },
      { at: '2026-03-29T01:30:00Z', admitted: true, remaining: 1, resetMs: 20.5 * HOUR },
      { at: '2026-03-29T21:59:58Z', admitted: true, remaining: 0, resetMs: 2_000 },
      { at: '2026-03-29T21:59:59Z', admitted: false, retryAfterMs: 1_000, remaining: 0, resetMs: 1_000 },
      { at: '2026-03-29T22:00:00Z', admitted: true, remaining: 2, resetMs: 24 * HOUR },
    ],
  },
  {
    name: 'a day in New York that DST lengthens to 25 hours resets at local midnight',
    rule: () => calendarRule(2, 'America/New_York', 'day'),
    steps: [
      { at: '2026-11-01T04:00:00Z', admitted: true, remaining: 1, resetMs: 25 * HOUR },
      { at: '2026-11-01T06:30:00Z', admitted: true, remaining: 0, resetMs: 22.5 * HOUR },
      // 2026-11-01 23:59 EST: still Sunday, 24 hours after it began in EDT.
      { at: '2026-11-02T04:59:00Z', admitted: false, retryAfterMs: 60_000, remaining: 0, resetMs: 60_000 },
      { at: '2026-11-02T05:00:00Z', admitted: true, remaining: 1, resetMs: 24 * HOUR },
    ],
  },
  {
    name: 'a monthly token budget in Berlin: 2026-12-31T23:00Z is already January',
    rule: () => calendarRule(1_000, 'Europe/Berlin', 'month', true),
    steps: [
      { at: '2026-12-01T10:00:00Z', cost: 600, admitted: true, remaining: 400, resetMs: at('2026-12-31T23:00:00Z') - at('2026-12-01T10:00:00Z') },
      { at: '2026-12-31T22:00:00Z', cost: 400, admitted: true, remaining: 0, resetMs: HOUR },
      { at: '2026-12-31T22:59:00Z', cost: 1, admitted: false, retryAfterMs: 60_000, remaining: 0, resetMs: 60_000 },
      // 00:00 on New Year's Day in Berlin: the whole budget, until February 1st 00:00 CET.
      { at: '2026-12-31T23:00:00Z', cost: 900, admitted: true, remaining: 100, resetMs: 31 * 24 * HOUR },
      { at: '2027-01-15T12:00:00Z', cost: 101, admitted: false, retryAfterMs: at('2027-01-31T23:00:00Z') - at('2027-01-15T12:00:00Z'), remaining: 100, resetMs: at('2027-01-31T23:00:00Z') - at('2027-01-15T12:00:00Z') },
      { at: '2027-01-15T12:00:00Z', cost: 100, admitted: true, remaining: 0, resetMs: at('2027-01-31T23:00:00Z') - at('2027-01-15T12:00:00Z') },
    ],
  },
  {
    name: 'a day in Kolkata (+05:30) turns at 18:30 UTC',
    rule: () => calendarRule(1, 'Asia/Kolkata', 'day'),
    steps: [
      { at: '2026-06-15T18:29:00Z', admitted: true, remaining: 0, resetMs: 60_000 },
      { at: '2026-06-15T18:29:30Z', admitted: false, retryAfterMs: 30_000, remaining: 0, resetMs: 30_000 },
      { at: '2026-06-15T18:30:00Z', admitted: true, remaining: 0, resetMs: 24 * HOUR },
    ],
  },
  {
    name: 'a day at Lord Howe (+10:30, DST +11) that lasts 23.5 hours',
    rule: () => calendarRule(1, 'Australia/Lord_Howe', 'day'),
    steps: [
      { at: '2026-10-03T13:30:00Z', admitted: true, remaining: 0, resetMs: 23.5 * HOUR },
      { at: '2026-10-04T12:59:59Z', admitted: false, retryAfterMs: SECOND, remaining: 0, resetMs: SECOND },
      { at: '2026-10-04T13:00:00Z', admitted: true, remaining: 0, resetMs: 24 * HOUR },
    ],
  },
];

let prefixes = 0;

function checksOf(rule: Rule): RuleCheck[] {
  return [
    { key: '{http:alice}u:|60000', rule: PER_MINUTE },
    { key: `{http:alice}u:${rule.unit === 'tokens' ? '|tok' : ''}|cal`, rule },
  ];
}

const cases = SCENARIOS.flatMap((scenario) => ALGORITHM_NAMES.map((algorithm) => ({ ...scenario, algorithm })));

describe('calendar windows in memory', () => {
  it.each(cases)('$name ($algorithm)', async ({ rule, steps, algorithm }) => {
    await run(memoryBackend(algorithm), checksOf(rule()), steps);
  });
});

describe.skipIf(!enabled)('calendar windows in Redis', () => {
  let server: RedisProcess;
  let client: Redis;
  let admin: Redis;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
    client = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await client.connect();
  });
  afterAll(async () => {
    await client?.quit();
    await admin?.quit();
    await server?.stop();
  });

  it.each(cases)('$name ($algorithm)', async ({ rule, steps, algorithm }) => {
    await run(redisBackend(client, admin, algorithm, `cw${++prefixes}`), checksOf(rule()), steps);
  });

  it('answers in the order asked when a calendar window comes before other rules', async () => {
    const store = redisBackend(client, admin, 'sliding_window', `cw${++prefixes}`);
    const month = calendarRule(2, 'Europe/Berlin', 'month');
    const checks: RuleCheck[] = [
      { key: '{t:acme}|cal', rule: month },
      { key: '{t:acme}u:http:alice|60000', rule: { limit: 1, windowMs: 60_000 } },
    ];
    const first = await store.decide(checks, at('2026-12-10T00:00:00Z'));
    expect(first.results.map((r) => r.remaining)).toEqual([1, 0]);
    // The per-minute rule refuses: nothing is charged, the month's remaining stays.
    const second = await store.decide(checks, at('2026-12-10T00:00:30Z'));
    expect(second.allowed).toBe(false);
    expect(second.results.map((r) => [r.retryAfterMs, r.remaining])).toEqual([
      [0, 1],
      [30_000, 0],
    ]);
  });

  it('decides on the server time: a gateway a little behind still counts in the period Redis is in', async () => {
    const prefix = `cw${++prefixes}`;
    const store = new RedisStore({ client, algorithm: 'sliding_window', prefix });
    const days = new CalendarPeriods('Europe/Berlin', 'day');
    const rule: Rule = { limit: 5, windowMs: 86_400_000, calendar: days };
    const checks: RuleCheck[] = [{ key: '{http:alice}u:|cal', rule }];
    // The gateway's clock says it is a minute before today's local midnight: yesterday.
    const [seconds, micros] = await admin.time();
    const redisNow = Number(seconds) * 1000 + Number(micros) / 1000;
    const today = days.periodAt(redisNow);
    const decision = await store.decide(checks, today.start - 60_000);
    expect(decision.allowed).toBe(true);
    // Counted in today's period (the hash says where), which ends at the next local midnight.
    expect(Number(await admin.hget(`${prefix}:{http:alice}u:|cal`, 's'))).toBe(today.start);
    expect(decision.results[0]!.remaining).toBe(4);
    expect(Math.abs(decision.results[0]!.resetMs - (today.end - redisNow))).toBeLessThan(5_000);
    const ttl = await admin.pttl(`${prefix}:{http:alice}u:|cal`);
    expect(Math.abs(ttl - (today.end - redisNow))).toBeLessThan(5_000);
  });

  it('fails the request, and only it, when the clocks are a whole period apart', async () => {
    const store = new RedisStore({ client, algorithm: 'fixed_window', prefix: `cw${++prefixes}` });
    const rule = calendarRule(5, 'UTC', 'day');
    const [seconds] = await admin.time();
    const farBehind = Number(seconds) * 1000 - 3 * 86_400_000;
    const ok = store.decide([{ key: '{http:bob}u:', rule: PER_MINUTE }], farBehind);
    await expect(store.decide([{ key: '{http:alice}u:|cal', rule }], farBehind)).rejects.toThrow(/clocks a period apart/);
    expect((await ok).allowed).toBe(true);
  });

  it('keeps one hash per key, living until its period ends', async () => {
    const prefix = `cw${++prefixes}`;
    const backend = redisBackend(client, admin, 'token_bucket', prefix);
    const rule = calendarRule(10, 'UTC', 'month', true);
    const key = '{t:acme}|tok|cal';
    // On the caller's time the TTL still runs on Redis's clock: the key lives (end - now) real ms.
    const now = at('2030-05-31T23:00:00Z');
    await backend.decide([{ key, rule, cost: 3 }], now);
    expect(await admin.hgetall(`${prefix}:${key}`)).toEqual({ s: String(at('2030-05-01T00:00:00Z')), c: '3' });
    const ttl = await admin.pttl(`${prefix}:${key}`);
    expect(ttl).toBeGreaterThan(HOUR - 5_000);
    expect(ttl).toBeLessThanOrEqual(HOUR);
  });
});

describe.each(['memory', ...(enabled ? ['redis'] : [])] as const)('settling a calendar charge (%s)', (kind) => {
  let server: RedisProcess | undefined;
  let client: Redis | undefined;
  let admin: Redis | undefined;

  beforeAll(async () => {
    if (kind !== 'redis') return;
    server = await startRedis();
    admin = inspector(server.url);
    client = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await client.connect();
  });
  afterAll(async () => {
    await client?.quit();
    await admin?.quit();
    await server?.stop();
  });

  const backendFor = (algorithm: AlgorithmName): Backend =>
    kind === 'memory' ? memoryBackend(algorithm) : redisBackend(client!, admin!, algorithm, `cs${++prefixes}`);

  it.each(ALGORITHM_NAMES)('a refund in the same period gives the tokens back; one after the period turned does nothing (%s)', async (algorithm) => {
    const backend = backendFor(algorithm);
    const rule = calendarRule(100, 'America/New_York', 'day', true);
    const checks: RuleCheck[] = [{ key: '{t:acme}|tok|cal', rule, cost: 40 }];
    const first = await backend.decide(checks, at('2026-03-08T05:30:00Z'));
    const second = await backend.decide(checks, at('2026-03-08T06:00:00Z'));
    expect(second.results[0]!.remaining).toBe(20);
    await backend.adjust(first, checks, [-40], at('2026-03-08T07:00:00Z'));
    expect((await backend.peek(checks, at('2026-03-08T07:00:00Z')))[0]!.remaining).toBe(60);
    // Midnight EDT (04:00 UTC): the day the charge was made in is over.
    await backend.adjust(second, checks, [-40], at('2026-03-09T04:00:01Z'));
    expect((await backend.peek(checks, at('2026-03-09T04:00:01Z')))[0]).toMatchObject({ remaining: 100, resetMs: 0 });
  });

  it.each(ALGORITHM_NAMES)('more used than estimated is charged to the period it is reported in (%s)', async (algorithm) => {
    const backend = backendFor(algorithm);
    const rule = calendarRule(1_000, 'Europe/Berlin', 'month', true);
    const checks: RuleCheck[] = [{ key: '{t:acme}|tok|cal', rule, cost: 100 }];
    const decision = await backend.decide(checks, at('2026-12-31T22:50:00Z'));
    // Reported after Berlin's midnight: the 400 extra tokens count in January.
    await backend.adjust(decision, checks, [400], at('2026-12-31T23:10:00Z'));
    expect((await backend.peek(checks, at('2026-12-31T23:10:00Z')))[0]).toMatchObject({
      remaining: 600,
      resetMs: at('2027-01-31T23:00:00Z') - at('2026-12-31T23:10:00Z'),
    });
  });
});
