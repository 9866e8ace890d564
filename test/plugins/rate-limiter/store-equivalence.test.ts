import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { ALGORITHM_NAMES, type AlgorithmName, type Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { keyScope, tenantKey, toolKey, userKey } from '../../../plugins/rate-limiter/keys.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { peekRedis } from '../../../plugins/rate-limiter/store/redis-admin.ts';
import { DECIDE_LUA, RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Decision, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { allKeys, hashTag, inspector, sleep, view, type DecisionView } from './redis-helpers.ts';
import { cachedStore } from './refusal-cache-helpers.ts';

const enabled = redisTestsEnabled();

/** A small time: a multiple of the 10 s and 20 s windows below, not of the 6 s and 60 s ones. */
const T_SMALL = 1_000_000;
/** A real epoch time (2027), 4.5 s before a boundary of every fixed window below. */
const T_EPOCH = 1_799_999_995_500;
/** 2100-01-01: a clock wildly ahead. */
const YEAR_2100 = 4_102_444_800_000;
/**
 * Every test's commands get this long; generous because vitest runs files side by side on two cores.
 * (The production default, 50 ms, is exercised in redis-chaos.test.ts.)
 */
const TIMEOUT_MS = 1_000;

/** The decision script as the server knows it: shared.lua, then decide.lua. */
const DECIDE_SHA = createHash('sha1').update(DECIDE_LUA).digest('hex');

const USERS = ['alice', 'bob', 'carol'] as const;

interface RuleSet {
  user: Rule;
  tenant: Rule;
  tool: Rule;
}

const WHOLE: RuleSet = {
  user: { limit: 3, windowMs: 10_000 },
  tenant: { limit: 5, windowMs: 20_000 },
  tool: { limit: 2, windowMs: 6_000 },
};

/** 7/m, 11/m and 3 per 10 s: emission intervals of 8571.43 ms, 5454.55 ms and 3333.33 ms. */
const FRACTIONAL: RuleSet = {
  user: { limit: 7, windowMs: 60_000 },
  tenant: { limit: 11, windowMs: 60_000 },
  tool: { limit: 3, windowMs: 10_000 },
};

/**
 * One request's checks, as the policy builds them. With one rule: the user's key under the user's
 * own hash tag. With three: user, tenant and tool keys, all under the tenant's tag.
 */
function checksFor(rules: RuleSet, count: 1 | 3, user: number): RuleCheck[] {
  const id = USERS[user]!;
  if (count === 1) return [{ key: userKey(keyScope('http', id, undefined)), rule: rules.user }];
  const scope = keyScope('http', id, 'acme');
  return [
    { key: userKey(scope), rule: rules.user },
    { key: tenantKey(scope), rule: rules.tenant },
    { key: toolKey(scope, 'search'), rule: rules.tool },
  ];
}

/** The same rules counting tokens: under the sliding window, a log of slots instead of a list of times. */
function inTokens(rules: RuleSet): RuleSet {
  const tokens = (rule: Rule): Rule => ({ ...rule, unit: 'tokens' });
  return { user: tokens(rules.user), tenant: tokens(rules.tenant), tool: tokens(rules.tool) };
}

/** [offset from the table's start in ms, user index]. */
type Arrival = readonly [number, number];

/**
 * The stores agree on *logical* time, but a key's TTL in Redis runs on the real clock: a fixed-window
 * key charged d ms (caller time) before its window ends lives d real ms. If the same window is asked
 * again after that, Redis has (correctly) dropped the key, while caller time says it is still live.
 * Production uses Redis time, where both clocks are the same; here we keep caller-time sequences
 * clear of that race: no charge within 50 ms of a fixed window's end followed by an arrival in the
 * same window.
 */
function clearOfTtlRace(times: readonly number[], rules: RuleSet): boolean {
  for (const { windowMs } of [rules.user, rules.tenant, rules.tool]) {
    for (let i = 0; i + 1 < times.length; i++) {
      const start = Math.floor(times[i]! / windowMs) * windowMs;
      const sameWindow = Math.floor(times[i + 1]! / windowMs) * windowMs === start;
      if (sameWindow && start + windowMs - times[i]! < 50) return false;
    }
  }
  return true;
}

interface Table {
  name: string;
  rules: RuleSet;
  arrivals: readonly Arrival[];
}

const I7 = 60_000 / 7;
const I3 = 10_000 / 3;

const TABLES: Table[] = [
  {
    name: 'a burst, then a trickle across window edges',
    rules: WHOLE,
    arrivals: [
      [0, 0], [0, 0], [0, 0], [0, 0], [0, 1], [1, 0], [1500, 0], [3000, 2], [3000, 2], [3000, 2],
      [3333, 0], [3334, 0], [4499, 1], [4500, 1], [4501, 0], [6000, 0], [6000, 0], [6667, 2],
      [9000, 0], [9999.5, 0], [10_000, 0], [10_000, 0], [10_001, 1], [12_000, 2], [14_500, 0],
      [16_000, 0], [16_000, 1], [19_000, 2], [20_000, 0], [20_000, 0], [24_499, 1], [24_500, 1],
      [30_000, 0], [30_000, 0], [30_000, 0], [30_000, 0],
    ],
  },
  {
    name: 'three users of one tenant, the tenant rule binding',
    rules: WHOLE,
    arrivals: [
      [0, 0], [0, 1], [0, 2], [100, 0], [100, 1], [100, 2], [200, 0], [5000, 1], [6000, 2],
      [6000, 2], [7000, 0], [12_000, 1], [12_000, 2], [20_000, 0], [20_000, 1], [20_050, 2],
      [20_100, 0], [26_000, 1], [40_000, 2], [40_000, 2], [40_000, 2], [40_000, 2], [40_001, 0],
    ],
  },
  {
    name: 'long idle gaps (state long expired, and keys gone from memory)',
    rules: WHOLE,
    arrivals: [
      [0, 0], [0, 0], [0, 0], [0, 0], [3_600_000, 0], [3_600_000, 0], [3_600_000, 0], [3_600_000, 0],
      [3_600_000, 1], [86_400_000, 0], [86_400_000, 1], [86_400_000, 2], [86_400_001, 0],
      [86_400_001, 0], [86_400_001, 0], [86_400_002, 1], [86_400_002, 2], [86_400_003, 2],
    ],
  },
  {
    name: 'fractional emission intervals (7/m, 11/m, 3 per 10 s)',
    rules: FRACTIONAL,
    arrivals: [
      [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 1], [0, 2],
      [I3 - 1, 0], [I3, 0], [I3, 1], [2 * I3, 2], [I7 - 1, 0], [I7, 0], [I7, 0], [I7 + 0.25, 1],
      [10_000, 0], [10_000, 2], [2 * I7 - 0.001, 0], [2 * I7, 0], [2 * I7 + 1e-3, 1],
      [3 * I7, 0], [3 * I7, 0], [4 * I7, 2], [4 * I7, 2], [59_999, 0], [60_000, 0], [60_000, 0],
      [60_000 + I7, 0], [60_000 + I7, 1], [60_000 + 2 * I7, 0], [120_000, 0], [120_000, 0],
      [120_000, 0], [120_000, 0], [120_000, 0], [120_000, 0], [120_000, 0], [120_000, 0],
    ],
  },
];

describe.skipIf(!enabled)('RedisStore (caller time) decides exactly as MemoryStore', () => {
  let server: RedisProcess;
  let admin: Redis;
  let client: Redis;
  let prefixes = 0;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  beforeEach(async () => {
    await admin.flushall();
    client = createRedisClient({ url: server.url, timeoutMs: TIMEOUT_MS }) as Redis;
    await client.connect();
  });
  afterEach(async () => {
    await client.quit();
  });

  /** Refusals the refusal cache answered from memory, over every replay (it must answer some). */
  let fromCache = 0;

  function stores(algorithm: AlgorithmName) {
    const prefix = `eq${++prefixes}`;
    return {
      memory: new MemoryStore(ALGORITHMS[algorithm], 10_000),
      redis: new RedisStore({ client, algorithm, prefix, timeSource: 'caller' }),
      // The same Redis behind the refusal cache, on keys of its own.
      cached: cachedStore(client, algorithm, `${prefix}c`),
      prefix,
    };
  }

  /**
   * Replays `times`/`users` on both stores (each tokens check charging `costs[i]`, 1 when absent);
   * returns both stores' views, request by request.
   */
  async function replayBoth(
    algorithm: AlgorithmName,
    rules: RuleSet,
    count: 1 | 3,
    times: readonly number[],
    users: readonly number[],
    costs: readonly number[] = [],
  ) {
    const { memory, redis, cached } = stores(algorithm);
    const fromMemory: DecisionView[] = [];
    const fromRedis: DecisionView[] = [];
    const fromCached: DecisionView[] = [];
    for (let i = 0; i < times.length; i++) {
      const checks = checksFor(rules, count, users[i]!).map((c) => ({ ...c, cost: costs[i] ?? 1 }));
      fromMemory.push(view(memory.decide(checks, times[i]!)));
      fromRedis.push(view(await redis.decide(checks, times[i]!)));
      fromCached.push(view(await cached.decide(checks, times[i]!)));
    }
    fromCache += cached.answered;
    // With the refusal cache in front, Redis answers exactly as without it.
    expect(fromCached).toEqual(fromRedis);
    return { fromMemory, fromRedis };
  }

  const cases = TABLES.flatMap((table) =>
    [T_SMALL, T_EPOCH].flatMap((t0) =>
      ALGORITHM_NAMES.flatMap((algorithm) =>
        ([1, 3] as const).flatMap((count) => (['requests', 'tokens'] as const).map((unit) => ({ table, t0, algorithm, count, unit }))),
      ),
    ),
  );

  it.each(cases)('$table.name, from t=$t0, $algorithm, $count rule(s) per request, in $unit', async ({ table, t0, algorithm, count, unit }) => {
    const times = table.arrivals.map(([offset]) => t0 + offset);
    const users = table.arrivals.map(([, user]) => user);
    expect(clearOfTtlRace(times, table.rules)).toBe(true);

    const rules = unit === 'tokens' ? inTokens(table.rules) : table.rules;
    const { fromMemory, fromRedis } = await replayBoth(algorithm, rules, count, times, users);
    for (let i = 0; i < times.length; i++) {
      expect(fromRedis[i], `request ${i} at +${table.arrivals[i]![0]} ms`).toEqual(fromMemory[i]);
    }
    // Not vacuous: the table both admits and refuses, and every result covers every rule.
    expect(fromRedis.some((d) => d.allowed)).toBe(true);
    expect(fromRedis.some((d) => !d.allowed)).toBe(true);
    expect(fromRedis.every((d) => d.results.length === count)).toBe(true);
    if (count === 3) {
      // More than one of the three rules refuses somewhere in the table.
      const refusing = new Set(fromRedis.flatMap((d) => d.results.flatMap((r, rule) => (r.retryAfterMs > 0 ? [rule] : []))));
      expect(refusing.size).toBeGreaterThanOrEqual(2);
    }
  });

  const step = fc.record({
    gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 70_000 })),
    fraction: fc.constantFrom(0, 0, 0, 0.25, 1 / 3),
    user: fc.integer({ min: 0, max: 2 }),
  });
  const rule = fc.record({ limit: fc.integer({ min: 1, max: 8 }), windowMs: fc.constantFrom(1_000, 6_000, 10_000, 60_000) });
  const scenario = fc.record({
    rules: fc.record({ user: rule, tenant: rule, tool: rule }),
    count: fc.constantFrom(1 as const, 3 as const),
    start: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 })),
    steps: fc.array(step, { minLength: 1, maxLength: 40 }),
  });

  it.each(ALGORITHM_NAMES)('%s: random arrival sequences get the same decisions from both stores', async (algorithm) => {
    let decisions = 0;
    let refusals = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async ({ rules, count, start, steps }) => {
        const times: number[] = [];
        let t = start;
        for (const s of steps) times.push((t += s.gap + s.fraction));
        fc.pre(algorithm !== 'fixed_window' || clearOfTtlRace(times, rules));
        const { fromMemory, fromRedis } = await replayBoth(
          algorithm,
          rules,
          count,
          times,
          steps.map((s) => s.user),
        );
        expect(fromRedis).toEqual(fromMemory);
        decisions += fromRedis.length;
        refusals += fromRedis.filter((d) => !d.allowed).length;
      }),
      { numRuns: 30 },
    );
    // The generated sequences did exercise refusals, not only admissions.
    expect(decisions).toBeGreaterThan(100);
    expect(refusals).toBeGreaterThan(0);
  });

  /**
   * Tokens rules on fractional times (charges anywhere inside their slots, slot ends compared with
   * times Redis and JavaScript compute alike) and costs up to the limit. Decisions only: every write
   * gives the key a TTL of at least its window, so no key is near its TTL while it still matters.
   */
  it.each(ALGORITHM_NAMES)('%s: random tokens sequences, with costs and fractional times, get the same decisions from both stores', async (algorithm) => {
    let refusals = 0;
    await fc.assert(
      fc.asyncProperty(scenario, fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 40, maxLength: 40 }), async ({ rules, count, start, steps }, costs) => {
        const times: number[] = [];
        let t = start;
        for (const s of steps) times.push((t += s.gap + s.fraction));
        fc.pre(algorithm !== 'fixed_window' || clearOfTtlRace(times, rules));
        const users = steps.map((s) => s.user);
        const { fromMemory, fromRedis } = await replayBoth(algorithm, inTokens(rules), count, times, users, costs);
        expect(fromRedis).toEqual(fromMemory);
        refusals += fromRedis.filter((d) => !d.allowed).length;
      }),
      { numRuns: 30 },
    );
    expect(refusals).toBeGreaterThan(20);
  });
  /**
   * Limits whose emission interval (window / limit) is a whole number of seconds: with arrivals whole
   * seconds apart too, every TTL Redis is given is a whole number of seconds, so no key is ever within
   * a second (of real time) of expiring while caller time still needs it.
   */
  const wholeSeconds = fc.oneof(
    fc.record({ limit: fc.constantFrom(1, 2, 5, 10), windowMs: fc.constant(10_000) }),
    fc.record({ limit: fc.constantFrom(1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), windowMs: fc.constant(60_000) }),
  );
  const costly = fc.record({
    requests: wholeSeconds,
    userTokens: wholeSeconds.map((r): Rule => ({ ...r, unit: 'tokens' })),
    tenantTokens: wholeSeconds.map((r): Rule => ({ ...r, unit: 'tokens' })),
    start: fc.constantFrom(1_000_000, 1_800_000_000_000),
    steps: fc.array(
      fc.record({
        gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 90 })).map((s) => s * 1000),
        user: fc.integer({ min: 0, max: 2 }),
        cost: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 3 }), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 70 }), weight: 1 }),
        /** An adjustment of an earlier admitted request instead of a new request. */
        adjust: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.nat(), weight: 1 }),
        /** How: a full refund, or each tokens charge becoming a random actual count (requests kept). */
        refund: fc.boolean(),
        actual: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 4 }), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 80 }), weight: 1 }),
      }),
      { minLength: 1, maxLength: 40, size: 'medium' },
    ),
  });

  it.each(ALGORITHM_NAMES)(
    '%s: random costs, refunds and commits on requests and tokens rules leave both stores the same',
    async (algorithm) => {
      let admitted = 0;
      let refused = 0;
      let adjusted = 0;
      await fc.assert(
        fc.asyncProperty(costly, async ({ requests, userTokens, tenantTokens, start, steps }) => {
          const { memory, redis, cached, prefix } = stores(algorithm);
          const checksOf = (user: number, cost: number): RuleCheck[] => {
            const scope = keyScope('http', USERS[user]!, 'acme');
            return [
              { key: userKey(scope), rule: requests },
              { key: `${userKey(scope)}|tok`, rule: userTokens, cost },
              { key: `${tenantKey(scope)}|tok`, rule: tenantTokens, cost },
            ];
          };
          const kept: { checks: RuleCheck[]; fromMemory: Decision; fromRedis: Decision; fromCached: Decision }[] = [];
          let now = start;
          for (const step of steps) {
            now += step.gap;
            if (step.adjust !== undefined && kept.length > 0) {
              const { checks, fromMemory, fromRedis, fromCached } = kept.splice(step.adjust % kept.length, 1)[0]!;
              const deltas = checks.map((c: RuleCheck) => (step.refund ? -(c.cost ?? 1) : c.rule.unit === 'tokens' ? step.actual - c.cost! : 0));
              memory.adjust(fromMemory, checks, deltas, now);
              await redis.adjust(fromRedis, checks, deltas, now);
              await cached.adjust(fromCached, checks, deltas, now);
              adjusted++;
            } else {
              const checks = checksOf(step.user, step.cost);
              const fromMemory = memory.decide(checks, now);
              const fromRedis = await redis.decide(checks, now);
              const fromCached = await cached.decide(checks, now);
              expect(view(fromRedis)).toEqual(view(fromMemory));
              expect(view(fromCached)).toEqual(view(fromMemory));
              expect(fromRedis.results.map((r) => r.tooLarge === true)).toEqual(fromMemory.results.map((r) => r.tooLarge === true));
              expect(fromCached.results.map((r) => r.tooLarge === true)).toEqual(fromMemory.results.map((r) => r.tooLarge === true));
              if (fromMemory.allowed) {
                kept.push({ checks, fromMemory, fromRedis, fromCached });
                admitted++;
              } else {
                refused++;
              }
            }
            // Every key stands the same in both, after decisions and adjustments alike.
            const all = [0, 1, 2].flatMap((user) => checksOf(user, 1));
            const [m, r] = [memory.peek(all, now), await peekRedis(client, algorithm, prefix, all, now)];
            expect(r).toEqual(m.map((x) => ({ ...x, resetMs: Math.ceil(x.resetMs) })));
          }
          fromCache += cached.answered;
        }),
        { numRuns: 25 },
      );
      // Not vacuous: plenty of each.
      expect(admitted).toBeGreaterThan(80);
      expect(refused).toBeGreaterThan(30);
      expect(adjusted).toBeGreaterThan(25);
    },
  );

  it('the refusal cache answered part of those refusals from memory (so the comparisons above covered it)', () => {
    expect(fromCache).toBeGreaterThan(20);
  });
});

describe.skipIf(!enabled)('RedisStore on a real server', () => {
  let server: RedisProcess;
  let admin: Redis;
  let client: Redis;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  beforeEach(async () => {
    await admin.flushall();
    client = createRedisClient({ url: server.url, timeoutMs: TIMEOUT_MS }) as Redis;
    await client.connect();
  });
  afterEach(async () => {
    await client.quit();
  });

  /** Each key's raw value (DUMP), or null when the key does not exist. */
  async function snapshot(keys: string[]): Promise<(string | null)[]> {
    return Promise.all(keys.map(async (key) => (await admin.dumpBuffer(key))?.toString('hex') ?? null));
  }

  it.each(ALGORITHM_NAMES)('%s: a refused request charges no rule and creates no key', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: 'fg' });
    const rules: RuleSet = {
      user: { limit: 5, windowMs: 60_000 },
      tenant: { limit: 1, windowMs: 60_000 },
      tool: { limit: 5, windowMs: 60_000 },
    };
    const alice = checksFor(rules, 3, 0);
    const bob = checksFor(rules, 3, 1);
    const first = await store.decide(alice, 0);
    expect(first.allowed).toBe(true);
    expect(first.results.map((r) => r.remaining)).toEqual([4, 0, 4]);

    const aliceKeys = alice.map((c) => `fg:${c.key}`);
    const bobKeys = bob.map((c) => `fg:${c.key}`);
    const before = await snapshot(aliceKeys);
    expect(before.every((v) => v !== null)).toBe(true);

    for (let i = 0; i < 5; i++) {
      const refusedAlice = await store.decide(alice, 0);
      expect(refusedAlice.allowed).toBe(false);
      // The tenant refuses; the user and tool rules still have their 4.
      expect(refusedAlice.results.map((r) => r.remaining)).toEqual([4, 0, 4]);
      expect(refusedAlice.results[1]!.retryAfterMs).toBeGreaterThan(0);
      const refusedBob = await store.decide(bob, 0);
      expect(refusedBob.allowed).toBe(false);
      expect(refusedBob.results.map((r) => r.remaining)).toEqual([5, 0, 5]);
    }
    // Alice's keys hold exactly what the admitted request wrote; Bob's user and tool keys were never created.
    expect(await snapshot(aliceKeys)).toEqual(before);
    expect(await admin.exists(bobKeys[0]!, bobKeys[2]!)).toBe(0);
    expect(bobKeys[1]).toBe(aliceKeys[1]);
  });

  it.each(ALGORITHM_NAMES)('%s: every key carries a TTL no longer than its window', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: 'fg' });
    const rules: RuleSet = { ...WHOLE, tenant: { limit: 10, windowMs: 20_000 }, tool: { limit: 10, windowMs: 6_000 } };
    const checks = checksFor(rules, 3, 0);
    const keys = checks.map((c) => `fg:${c.key}`);
    // One request, then enough for the user rule's whole burst.
    for (let i = 0; i < 3; i++) expect((await store.decide(checks, 0)).allowed).toBe(true);
    expect((await store.decide(checks, 0)).allowed).toBe(false);
    const ttls = await Promise.all(keys.map((key) => admin.pttl(key)));
    checks.forEach((check, i) => {
      const ttl = ttls[i]!;
      expect(ttl, keys[i]).toBeGreaterThan(0);
      expect(ttl, keys[i]).toBeLessThanOrEqual(check.rule.windowMs);
    });
    if (algorithm !== 'fixed_window') {
      // The user rule's state matters for one more window from the last charge (a full burst of 3 of 3
      // for the bucket); the key must not vanish sooner than that (within a second of test time).
      expect(ttls[0]!).toBeGreaterThan(rules.user.windowMs - 1_000);
    }
  });

  it.each(ALGORITHM_NAMES)('%s: keys are gone once their window has passed, and the quota is whole again', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: 'fg' });
    const rule = { limit: 2, windowMs: 150 };
    const checks: RuleCheck[] = [{ key: userKey(keyScope('http', 'alice', undefined)), rule }];
    const charged = performance.now();
    expect((await store.decide(checks, 0)).allowed).toBe(true);
    expect((await store.decide(checks, 0)).allowed).toBe(true);
    expect(await allKeys(admin)).toEqual(['fg:{http:alice}u:']);
    const ttl = await admin.pttl('fg:{http:alice}u:');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(150);
    // Wait out the TTL Redis reported (plus a little), not a guess.
    await sleep(ttl + 30 - (performance.now() - charged));
    expect(await admin.exists('fg:{http:alice}u:')).toBe(0);
    expect(await admin.dbsize()).toBe(0);
    expect((await store.decide(checks, 0)).results[0]!.remaining).toBe(1);
  });

  it('applies the prefix and puts every key of a request under one hash tag, even for ids with braces', async () => {
    const store = new RedisStore({ client, algorithm: 'sliding_window', prefix: 'gw-eu1' });
    const hostile = ['{x}', 'a}b{c', '}{', 'ok'];
    for (const user of hostile) {
      for (const tenant of [undefined, '{acme}', 'acme']) {
        const scope = keyScope('http', user, tenant);
        const checks: RuleCheck[] = [
          { key: userKey(scope), rule: WHOLE.user },
          ...(tenant === undefined ? [] : [{ key: tenantKey(scope), rule: WHOLE.tenant }]),
          { key: toolKey(scope, 'se{arch}'), rule: WHOLE.tool },
        ];
        await admin.flushall();
        expect((await store.decide(checks, 0)).allowed).toBe(true);
        const keys = await allKeys(admin);
        expect(keys).toHaveLength(checks.length);
        for (const key of keys) expect(key.startsWith('gw-eu1:{')).toBe(true);
        const tags = new Set(keys.map(hashTag));
        expect(tags.size, JSON.stringify(keys)).toBe(1);
        const [tag] = tags;
        expect(tag).toBeDefined();
        // The tag is the tenant's when a tenant rule applies, else the user's; braces in ids are escaped.
        const escape = (id: string) => id.replaceAll('{', '%7B').replaceAll('}', '%7D');
        expect(tag).toBe(tenant === undefined ? `http:${escape(user)}` : `t:${escape(tenant)}`);
      }
    }
  });

  it('keeps deciding after SCRIPT FLUSH (NOSCRIPT), with the state intact, also under concurrency', async () => {
    const store = new RedisStore({ client, algorithm: 'sliding_window', prefix: 'fg' });
    const checks = checksFor({ ...WHOLE, user: { limit: 10, windowMs: 60_000 }, tenant: { limit: 10, windowMs: 60_000 }, tool: { limit: 10, windowMs: 60_000 } }, 3, 0);
    expect((await store.decide(checks, 0)).results[0]!.remaining).toBe(9);
    expect(await admin.script('EXISTS', DECIDE_SHA)).toEqual([1]);
    expect(await admin.script('FLUSH')).toBe('OK');
    // The script is gone from the server: a bare EVALSHA would now fail with NOSCRIPT.
    expect(await admin.script('EXISTS', DECIDE_SHA)).toEqual([0]);
    expect((await store.decide(checks, 0)).results[0]!.remaining).toBe(8);

    await admin.script('FLUSH');
    // Twelve at once after another flush: all answered, exactly the 8 left admitted.
    const burst = await Promise.all(Array.from({ length: 12 }, () => store.decide(checks, 0)));
    expect(burst.filter((d) => d.allowed)).toHaveLength(8);
    expect(burst.filter((d) => !d.allowed)).toHaveLength(4);
  });

  it.each(ALGORITHM_NAMES)('%s: decides on Redis time by default; a wildly wrong caller clock changes nothing', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: 'fg' });
    const rule = { limit: 3, windowMs: 3_600_000 };
    const checks: RuleCheck[] = [{ key: userKey(keyScope('http', 'alice', undefined)), rule }];
    const wrong = [0, YEAR_2100, 0, YEAR_2100];
    const before = Date.now();
    const decisions = [];
    for (const now of wrong) decisions.push(await store.decide(checks, now));
    const after = Date.now();
    // On one clock, three of four are admitted; alternating 1970 and 2100 would have reset the count.
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((d) => d.results[0]!.remaining)).toEqual([2, 1, 0, 0]);
    const retry = decisions[3]!.retryAfterMs;
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(rule.windowMs);

    // What Redis stored is stamped with the server's time (this machine's clock), not the caller's.
    const key = 'fg:{http:alice}u:';
    const margin = 2_000;
    if (algorithm === 'sliding_window') {
      const stamps = (await admin.lrange(key, 0, -1)).map(Number);
      expect(stamps).toHaveLength(3);
      for (const stamp of stamps) {
        expect(stamp).toBeGreaterThan(before - margin);
        expect(stamp).toBeLessThan(after + margin);
      }
    } else if (algorithm === 'fixed_window') {
      const start = Number(await admin.hget(key, 's'));
      expect(start).toBe(Math.floor(after / rule.windowMs) * rule.windowMs);
      expect(await admin.hget(key, 'c')).toBe('3');
    } else {
      // Three emission intervals (20 min each) past the server's now.
      const tat = Number(await admin.get(key));
      expect(tat - before).toBeGreaterThan(rule.windowMs - margin);
      expect(tat - after).toBeLessThan(rule.windowMs + margin);
    }
    // Whatever time is passed, the key lives one window of real time, at most.
    const ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(rule.windowMs);
  });
});
