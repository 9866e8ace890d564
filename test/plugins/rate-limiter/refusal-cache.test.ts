import fc from 'fast-check';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { ALGORITHM_NAMES, type AlgorithmName, type Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { blockKey } from '../../../plugins/rate-limiter/blocks/keys.ts';
import { CalendarPeriods } from '../../../plugins/rate-limiter/calendar/periods.ts';
import { keyScope, ownsKey, tenantKey, userKey } from '../../../plugins/rate-limiter/keys.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import type { Decision, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { ManualClock } from '../../../src/plugin-sdk.ts';
import type { HookResult } from '../../../src/hooks/schemas.ts';
import { redisTestsEnabled, startRedis, startRedisCluster, type RedisCluster, type RedisProcess } from '../../support/redis.ts';
import { startHarness, type Harness } from './plugin-harness.ts';
import { cachedStore, type CachedStore } from './refusal-cache-helpers.ts';
import { eventually, inspector, view, within } from './redis-helpers.ts';

/**
 * The refusal cache against a real redis-server: it answers a flood from memory with exactly what
 * Redis would answer (the memory store is the reference), never admits, and forgets what a refund
 * or an operator's reset changed, on every instance. Most tests run the store on the callers' time
 * (as the shared decision tables do), so that time is the test's to move.
 */
const enabled = redisTestsEnabled();

const T0 = 1_800_000_000_000;
/** 3 requests per minute: a refusal lasts long enough for anything a test does. */
const RATE: Rule = { limit: 3, windowMs: 60_000 };

/** The next time at least 100 ms before the end of every fixed window used below (2 s, 10 s, 20 s). */
function clearOfWindowEnds(now: number): number {
  for (const windowMs of [2_000, 10_000, 20_000]) {
    if (now % windowMs > windowMs - 100) now += windowMs - (now % windowMs);
  }
  return now;
}

function requests(user: string, rule: Rule = RATE): RuleCheck[] {
  return [{ key: userKey(keyScope('http', user, undefined)), rule }];
}

describe.skipIf(!enabled)('refusal cache (caller time)', () => {
  let server: RedisProcess;
  let admin: Redis;
  const clients: Redis[] = [];
  const caches: CachedStore[] = [];
  let prefixes = 0;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.cache.close()));
    for (const client of clients.splice(0)) client.disconnect();
  });

  async function client(): Promise<Redis> {
    const c = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await c.connect();
    clients.push(c);
    return c;
  }

  /** A cache (an instance) over the shared Redis; instances made with the same `prefix` share state. */
  async function instance(algorithm: AlgorithmName, prefix: string, options: Parameters<typeof cachedStore>[3] = {}): Promise<CachedStore> {
    const cached = cachedStore(await client(), algorithm, prefix, options);
    caches.push(cached);
    return cached;
  }

  it.each(ALGORITHM_NAMES)('%s: after two refusals from Redis a flood is answered from memory, exactly as Redis would, until it would admit', async (algorithm) => {
    const cached = await instance(algorithm, `f${++prefixes}`);
    const memory = new MemoryStore(ALGORITHMS[algorithm], 100);
    const checks = requests('alice');
    let now = T0;
    const compare = async () => {
      const [got, want] = [await cached.decide(checks, now), memory.decide(checks, now)];
      expect(view(got)).toEqual(view(want));
      return got;
    };
    for (let i = 0; i < 3; i++) expect((await compare()).allowed).toBe(true);
    // Two refusals from Redis, then the flood: 50 more, one every 10 ms.
    for (let i = 0; i < 52; i++) {
      now += 10;
      expect((await compare()).allowed).toBe(false);
    }
    expect(cached.inner.redisDecisions).toBe(5);
    expect(cached.answered).toBe(50);
    // Time passes to when Redis would admit: the cache does not answer that, Redis does.
    const until = now + memory.decide(checks, now).retryAfterMs;
    now = until;
    expect((await compare()).allowed).toBe(true);
    expect(cached.inner.redisDecisions).toBe(6);
  });

  it.each(ALGORITHM_NAMES)('%s: escalating blocks: strikes all reach Redis; a block in force is answered from memory as Redis would, until it ends', async (algorithm) => {
    const cached = await instance(algorithm, `k${++prefixes}`);
    const memory = new MemoryStore(ALGORITHMS[algorithm], 100);
    const base = userKey(keyScope('http', 'alice', undefined));
    const block = { key: blockKey(base), policy: { after: 2, durationsMs: [3_000, 6_000], decayMs: 86_400_000 }, subject: 'user' as const };
    const checks: RuleCheck[] = [{ key: `${base}|10000`, rule: { limit: 2, windowMs: 10_000 }, block }];
    const blockedView = (d: Decision) => d.blocked && { key: d.blocked.block.key, level: d.blocked.level, started: d.blocked.started, retryAfterMs: Math.ceil(d.blocked.retryAfterMs) };
    let now = T0;
    const started: number[] = [];
    for (let i = 0; i < 400; i++, now += 25) {
      const before = cached.answered;
      const [got, want] = [await cached.decide(checks, now), memory.decide(checks, now)];
      expect(view(got)).toEqual(view(want));
      expect(blockedView(got)).toEqual(blockedView(want));
      if (want.blocked?.started) started.push(i);
      // Only a block in force is answered from memory: every strike was counted by Redis.
      if (cached.answered > before) expect(want.blocked).toMatchObject({ started: false });
    }
    // Blocks started again and again (each one level up), and most of their requests never reached Redis.
    expect(started.length).toBeGreaterThanOrEqual(2);
    expect(cached.answered).toBeGreaterThan(250);
  });

  it('a calendar day: answered from memory as Redis would until local midnight, when Redis admits again', async () => {
    const cached = await instance('sliding_window', `d${++prefixes}`);
    const memory = new MemoryStore(ALGORITHMS.sliding_window, 100);
    const day = new CalendarPeriods('Europe/Berlin', 'day');
    const checks: RuleCheck[] = [{ key: `${userKey(keyScope('http', 'alice', undefined))}|cd`, rule: { limit: 3, windowMs: 86_400_000, calendar: day } }];
    const midnight = day.periodAt(T0).end;
    let now = midnight - 2_000;
    const seen: boolean[] = [];
    while (now < midnight + 500) {
      const [got, want] = [await cached.decide(checks, now), memory.decide(checks, now)];
      expect(view(got)).toEqual(view(want));
      seen.push(got.allowed);
      now += 50;
    }
    // Three before midnight, three after; the refusals in between mostly from memory.
    expect(seen.filter(Boolean)).toHaveLength(6);
    expect(cached.answered).toBeGreaterThan(25);
  });

  it('answers a refusal for every rule of the request, each rule’s figures as Redis gives them', async () => {
    const cached = await instance('sliding_window', `m${++prefixes}`);
    const memory = new MemoryStore(ALGORITHMS.sliding_window, 100);
    const scope = keyScope('http', 'alice', 'acme');
    // A prompt fetch's checks: two windows of the user's, a token budget, and the tenant's rate.
    const checks = (cost: number): RuleCheck[] => [
      { key: `${userKey(scope)}|10000`, rule: { limit: 2, windowMs: 10_000 } },
      { key: `${userKey(scope)}|3600000`, rule: { limit: 50, windowMs: 3_600_000 } },
      { key: `${userKey(scope)}|tok`, rule: { limit: 1_000, windowMs: 60_000, unit: 'tokens' }, cost },
      { key: tenantKey(scope), rule: { limit: 2, windowMs: 20_000 } },
    ];
    let now = T0;
    memory.decide(checks(100), now);
    await cached.decide(checks(100), now);
    // Bob uses up the tenant: it refuses alice from now on, while her own rules would still admit.
    const bob: RuleCheck[] = [{ key: tenantKey(keyScope('http', 'bob', 'acme')), rule: { limit: 2, windowMs: 20_000 } }];
    now += 1_000;
    memory.decide(bob, now);
    await cached.decide(bob, now);
    for (let i = 0; i < 20; i++) {
      now += 40;
      const cost = 1 + (i % 5) * 100;
      const [got, want] = [await cached.decide(checks(cost), now), memory.decide(checks(cost), now)];
      expect(got.allowed).toBe(false);
      expect(view(got)).toEqual(view(want));
    }
    // The first two refusals were Redis's; the next 18 came from memory.
    expect(cached.answered).toBe(18);
  });

  it('does not answer while a key others charge (a tenant’s) still admits: its figures are not this user’s to know', async () => {
    const cached = await instance('sliding_window', `t${++prefixes}`);
    const scope = keyScope('http', 'alice', 'acme');
    const checks: RuleCheck[] = [
      { key: userKey(scope), rule: RATE },
      { key: tenantKey(scope), rule: { limit: 100, windowMs: 60_000 } },
    ];
    let now = T0;
    for (let i = 0; i < 20; i++) await cached.decide(checks, (now += 10));
    expect(cached.answered).toBe(0);
    expect(cached.inner.redisDecisions).toBe(20);
  });

  it('a reload that changes the limit is never answered from a refusal under the old one', async () => {
    const cached = await instance('sliding_window', `r${++prefixes}`);
    let now = T0;
    for (let i = 0; i < 6; i++) await cached.decide(requests('alice'), (now += 10));
    expect(cached.answered).toBe(1);
    const raised = await cached.decide(requests('alice', { limit: 10, windowMs: 60_000 }), (now += 10));
    expect(raised.allowed).toBe(true);
    expect(cached.answered).toBe(1);
  });

  it('a refusal with the breaker not closed goes to the backend (its failure policy decides, not the cache)', async () => {
    const cached = await instance('sliding_window', `b${++prefixes}`);
    let now = T0;
    for (let i = 0; i < 6; i++) await cached.decide(requests('alice'), (now += 10));
    expect(cached.answered).toBe(1);
    (cached.inner as { breaker: string }).breaker = 'open';
    const before = cached.inner.redisDecisions;
    await cached.decide(requests('alice'), (now += 10));
    expect(cached.inner.redisDecisions).toBe(before + 1);
    expect(cached.answered).toBe(1);
  });

  it('holds at most maxTags hash tags, however many users flood', async () => {
    const cached = await instance('sliding_window', `n${++prefixes}`, { maxTags: 5 });
    let now = T0;
    for (let round = 0; round < 6; round++) {
      for (let user = 0; user < 20; user++) {
        await cached.decide(requests(`u${user}`), (now += 1));
        expect(cached.cache.cachedTags).toBeLessThanOrEqual(5);
      }
    }
  });

  it('a refund on this instance reaches its cache before the next request', async () => {
    const cached = await instance('sliding_window', `a${++prefixes}`);
    const checks = requests('alice');
    let now = T0;
    const admitted: Decision[] = [];
    for (let i = 0; i < 3; i++) admitted.push(await cached.decide(checks, (now += 10)));
    for (let i = 0; i < 4; i++) expect((await cached.decide(checks, (now += 10))).allowed).toBe(false);
    expect(cached.answered).toBe(2);
    // A cancelled call gives its request back.
    await cached.adjust(admitted[2]!, checks, [-1], (now += 10));
    expect((await cached.decide(checks, (now += 10))).allowed).toBe(true);
  });

  /** Random floods by three users of one tenant, with refunds, commits and resets, on one instance. */
  const op = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('decide' as const),
        user: fc.integer({ min: 0, max: 2 }),
        gap: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 5_000 })),
        cost: fc.integer({ min: 1, max: 6 }),
        /** A burst: this many requests of that user, 1 ms apart. */
        burst: fc.integer({ min: 1, max: 8 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('adjust' as const), which: fc.nat(), refund: fc.boolean(), actual: fc.integer({ min: 0, max: 8 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), user: fc.integer({ min: 0, max: 2 }) }) },
  );
  const scenario = fc.record({
    user: fc.record({ limit: fc.integer({ min: 1, max: 4 }), windowMs: fc.constantFrom(2_000, 10_000) }),
    tokens: fc.record({ limit: fc.integer({ min: 6, max: 20 }), windowMs: fc.constant(10_000), unit: fc.constant('tokens' as const) }),
    tenant: fc.record({ limit: fc.integer({ min: 2, max: 12 }), windowMs: fc.constantFrom(10_000, 20_000) }),
    withTenant: fc.boolean(),
    ops: fc.array(op, { minLength: 10, maxLength: 60 }),
  });

  it.each(ALGORITHM_NAMES)('%s: random floods, refunds, commits and resets: every answer is the memory store’s, and only refusals come from memory', async (algorithm) => {
    let answered = 0;
    let refused = 0;
    const shared = await client();
    await fc.assert(
      fc.asyncProperty(scenario, async ({ user, tokens, tenant, withTenant, ops }) => {
        const cached = cachedStore(shared, algorithm, `p${++prefixes}`);
        const memory = new MemoryStore(ALGORITHMS[algorithm], 1_000);
        const users = ['ann', 'ben', 'cat'];
        const scopeOf = (u: number) => keyScope('http', users[u]!, withTenant ? 'acme' : undefined);
        const checksOf = (u: number, cost: number): RuleCheck[] => {
          const scope = scopeOf(u);
          const own: RuleCheck[] = [
            { key: userKey(scope), rule: user },
            { key: `${userKey(scope)}|tok`, rule: tokens, cost },
          ];
          return withTenant ? [...own, { key: tenantKey(scope), rule: tenant }] : own;
        };
        const kept: { checks: RuleCheck[]; got: Decision; want: Decision }[] = [];
        let now = T0;
        for (const step of ops) {
          if (step.kind === 'decide') {
            now += step.gap;
            for (let i = 0; i < step.burst; i++) {
              now += i === 0 ? 0 : 1;
              // A fixed window's key expires with its window on the real clock; a charge in a window's
              // last moments could be gone from Redis before caller time leaves that window.
              if (algorithm === 'fixed_window') now = clearOfWindowEnds(now);
              const checks = checksOf(step.user, step.cost);
              const before = cached.answered;
              const [got, want] = [await cached.decide(checks, now), memory.decide(checks, now)];
              expect(view(got)).toEqual(view(want));
              // The cache only ever answers refusals; every admission is Redis's.
              if (cached.answered > before) expect(want.allowed).toBe(false);
              if (want.allowed) kept.push({ checks, got, want });
              else refused++;
            }
          } else if (step.kind === 'adjust' && kept.length > 0) {
            const { checks, got, want } = kept.splice(step.which % kept.length, 1)[0]!;
            const deltas = checks.map((c) => (step.refund ? -(c.cost ?? 1) : c.rule.unit === 'tokens' ? step.actual - c.cost! : 0));
            memory.adjust(want, checks, deltas, now);
            await cached.adjust(got, checks, deltas, now);
          } else if (step.kind === 'reset') {
            const scope = scopeOf(step.user);
            memory.forget((key) => ownsKey(scope, key));
            await cached.cache.forget(scope, (key) => ownsKey(scope, key));
          }
        }
        answered += cached.answered;
        await cached.cache.close();
      }),
      { numRuns: 40 },
    );
    // Not vacuous: many refusals, and a good share of them answered from memory.
    expect(refused).toBeGreaterThan(200);
    expect(answered).toBeGreaterThan(50);
  });

  describe('several instances on one Redis', () => {
    /** Floods alice on `cache` until it answers from memory; returns the time reached. */
    async function floodUntilCached(cache: CachedStore, now: number): Promise<number> {
      for (let i = 0; i < 10 && cache.answered === 0; i++) await cache.decide(requests('alice'), (now += 10));
      expect(cache.answered).toBeGreaterThan(0);
      return now;
    }

    it('an operator’s reset on one instance frees the user on the others within a second, over pub/sub', async () => {
      const prefix = `s${++prefixes}`;
      const [a, b] = [await instance('sliding_window', prefix, { invalidations: true }), await instance('sliding_window', prefix, { invalidations: true })];
      await eventually(() => a.cache.listening && b.cache.listening, 5_000, 'both subscribed');
      let now = T0;
      for (let i = 0; i < 3; i++) await b.decide(requests('alice'), (now += 10));
      now = await floodUntilCached(a, now);
      const scope = keyScope('http', 'alice', undefined);
      await b.cache.forget(scope, (key) => ownsKey(scope, key));
      // Caller time stands still: only the announcement can make A ask Redis again.
      const started = performance.now();
      await eventually(async () => (await a.decide(requests('alice'), now)).allowed, 1_000, 'alice admitted on A after the reset on B', 5);
      expect(performance.now() - started).toBeLessThan(1_000);
    });

    it('a refund on one instance reaches the others’ caches', async () => {
      const prefix = `s${++prefixes}`;
      const [a, b] = [await instance('sliding_window', prefix, { invalidations: true }), await instance('sliding_window', prefix, { invalidations: true })];
      await eventually(() => a.cache.listening && b.cache.listening, 5_000, 'both subscribed');
      let now = T0;
      const admitted: Decision[] = [];
      for (let i = 0; i < 3; i++) admitted.push(await b.decide(requests('alice'), (now += 10)));
      now = await floodUntilCached(a, now);
      await b.adjust(admitted[0]!, requests('alice'), [-1], now);
      await eventually(async () => (await a.decide(requests('alice'), now)).allowed, 1_000, 'alice admitted on A after the refund on B', 5);
    });

    it('without pub/sub, a stale refusal is answered for at most a second (of the instance’s own time)', async () => {
      const prefix = `s${++prefixes}`;
      const a = await instance('sliding_window', prefix, { invalidations: false });
      const b = await instance('sliding_window', prefix, { invalidations: true });
      let now = T0;
      for (let i = 0; i < 3; i++) await b.decide(requests('alice'), (now += 10));
      now = await floodUntilCached(a, now);
      const readAt = now - 10;
      const scope = keyScope('http', 'alice', undefined);
      await b.cache.forget(scope, (key) => ownsKey(scope, key));
      // The fault: A never hears of the reset, and goes on refusing from memory...
      const answeredBefore = a.answered;
      for (const at of [now, readAt + 500, readAt + 990]) expect((await a.decide(requests('alice'), at)).allowed).toBe(false);
      expect(a.answered).toBe(answeredBefore + 3);
      // ... but not past a second after its read: then Redis, which admits.
      expect((await a.decide(requests('alice'), readAt + 1_000)).allowed).toBe(true);
      expect(a.answered).toBe(answeredBefore + 3);
    });

    it('a subscription lost and re-established clears the cache (announcements in between are lost)', async () => {
      const a = await instance('sliding_window', `s${++prefixes}`, { invalidations: true });
      await eventually(() => a.cache.listening, 5_000, 'subscribed');
      const now = await floodUntilCached(a, T0);
      expect(a.cache.cachedTags).toBe(1);
      const killed = await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      expect(Number(killed)).toBeGreaterThanOrEqual(1);
      await eventually(() => a.cache.cachedTags === 0 && a.cache.listening, 5_000, 'resubscribed, cache cleared');
      const before = a.inner.redisDecisions;
      await a.decide(requests('alice'), now + 10);
      expect(a.inner.redisDecisions).toBe(before + 1);
    });
  });
});

describe.skipIf(!enabled)('refusal cache on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const clients: Cluster[] = [];
  const caches: CachedStore[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.cache.close()));
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  async function instance(): Promise<CachedStore> {
    const client = createRedisClient({ cluster: cluster.seeds.map((s) => `${s.host}:${s.port}`), timeoutMs: 2_000 }) as Cluster;
    await within(client.connect(), 5_000, 'cluster connect()');
    clients.push(client);
    const cached = cachedStore(client, 'sliding_window', 'cl', { invalidations: true });
    caches.push(cached);
    return cached;
  }

  it('reads a refused user’s keys in one transaction on their slot, and a reset on one instance reaches the other', async () => {
    const [a, b] = [await instance(), await instance()];
    await eventually(() => a.cache.listening && b.cache.listening, 10_000, 'both subscribed');
    const owners = new Set<string>();
    for (const user of ['alice', 'bob', 'carol']) {
      let now = T0;
      for (let i = 0; i < 3; i++) expect((await b.decide(requests(user), (now += 10))).allowed).toBe(true);
      const key = `cl:${requests(user)[0]!.key}`;
      for (const node of clients[0]!.nodes('master')) if ((await node.exists(key).catch(() => 0)) === 1) owners.add(`${node.options.port}`);
      const answeredBefore = a.answered;
      for (let i = 0; i < 6; i++) expect((await a.decide(requests(user), (now += 10))).allowed).toBe(false);
      expect(a.answered - answeredBefore).toBe(4);
      const scope = keyScope('http', user, undefined);
      await b.cache.forget(scope, (key) => ownsKey(scope, key));
      await eventually(async () => (await a.decide(requests(user), now)).allowed, 1_000, `${user} admitted on A after the reset on B`, 5);
    }
    // Their keys live on more than one master, and each instance heard resets wherever it was subscribed.
    expect(owners.size).toBeGreaterThan(1);
  });
});

/** The plugin as a gateway runs it (Redis time, the system's wiring), with the test's clock. */
describe.skipIf(!enabled)('refusal cache in the rate limiter (Redis time)', () => {
  let server: RedisProcess;
  let admin: Redis;
  const harnesses: Harness[] = [];

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  beforeEach(async () => {
    await admin.config('RESETSTAT');
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.teardown()));
  });

  async function harness(config: Record<string, unknown>, clock = new ManualClock(T0)): Promise<Harness> {
    const h = await startHarness({ backend: 'redis', redis_url: server.url, redis_timeout_ms: 2_000, by_user: '3/m', ...config }, clock);
    harnesses.push(h);
    return h;
  }

  /** Script calls Redis has run (decisions and adjustments). */
  async function scriptCalls(): Promise<number> {
    const info = await admin.info('commandstats');
    return [...info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  const refusedWith = (result: HookResult) => (result.continue ? undefined : result.violation);

  it('a flood costs Redis no script calls once cached, answers as Redis did, and is counted in /metrics; off, every request costs one', async () => {
    const clock = new ManualClock(T0);
    const on = await harness({ redis_key_prefix: 'on' }, clock);
    for (let i = 0; i < 3; i++) expect((await on.prompt()).continue).toBe(true);
    const first = refusedWith(await on.prompt())!;
    await on.prompt();
    // Let the state read land (it follows the second refusal).
    await eventually(async () => {
      const before = await scriptCalls();
      await on.prompt();
      return (await scriptCalls()) === before;
    }, 2_000, 'a refusal answered without Redis');
    const before = await scriptCalls();
    const flood = await Promise.all(Array.from({ length: 100 }, () => on.prompt()));
    expect(await scriptCalls()).toBe(before);
    for (const result of flood) {
      const violation = refusedWith(result)!;
      expect(violation.code).toBe('rate_limited');
      expect(Math.abs(violation.retryAfter! - first.retryAfter!)).toBeLessThanOrEqual(1);
      expect(violation.headers['X-RateLimit-Remaining']).toBe('0');
      expect(violation.details).toEqual(first.details);
    }
    expect(on.metrics.render()).toMatch(/floodgate_ratelimit_cached_refusals_total \d{3,}/);
    // A second past its read, the cache asks Redis again (once), and goes on answering.
    clock.advance(1_000);
    const later = await scriptCalls();
    await Promise.all(Array.from({ length: 5 }, () => on.prompt()));
    expect(await scriptCalls()).toBeGreaterThan(later);

    const off = await harness({ redis_key_prefix: 'off', refusal_cache: false }, clock);
    for (let i = 0; i < 5; i++) await off.prompt();
    const offBefore = await scriptCalls();
    for (let i = 0; i < 50; i++) await off.prompt();
    expect((await scriptCalls()) - offBefore).toBe(50);
  });
});
