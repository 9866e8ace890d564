import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { ALGORITHM_NAMES } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { keyScope, tenantKey, toolKey, userKey } from '../../../plugins/rate-limiter/keys.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { inspector, view } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

/**
 * On a single server the Redis store sends the decisions asked in one tick as one script call. They
 * must come out exactly as separate calls would: in the order asked, each request all-or-nothing.
 */
describe.skipIf(!enabled)('RedisStore batches the decisions of one tick', () => {
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
    client = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await client.connect();
  });
  afterEach(async () => {
    await client.quit();
  });

  const user = (id: string): RuleCheck[] => [{ key: userKey(keyScope('http', id, undefined)), rule: { limit: 5, windowMs: 60_000 } }];

  it.each(ALGORITHM_NAMES)('%s: 200 decisions at once for 20 users admit the first 5 asked per user, in order', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: `b${++prefixes}` });
    const asks = Array.from({ length: 200 }, (_, i) => `user-${i % 20}`);
    const decisions = await Promise.all(asks.map((id) => store.decide(user(id), 0)));
    for (let u = 0; u < 20; u++) {
      const mine = decisions.filter((_, i) => i % 20 === u);
      expect(mine.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false, false, false, false]);
      expect(mine.slice(0, 5).map((d) => d.results[0]!.remaining)).toEqual([4, 3, 2, 1, 0]);
      for (const refused of mine.slice(5)) expect(refused.retryAfterMs).toBeGreaterThan(0);
    }
  });

  it.each(ALGORITHM_NAMES)('%s: a mixed batch (one and three rules) decides as the memory store does, request by request', async (algorithm) => {
    const redis = new RedisStore({ client, algorithm, prefix: `b${++prefixes}`, timeSource: 'caller' });
    const memory = new MemoryStore(ALGORITHMS[algorithm], 1_000);
    const three = (id: string): RuleCheck[] => {
      const scope = keyScope('http', id, 'acme');
      return [
        { key: userKey(scope), rule: { limit: 3, windowMs: 10_000 } },
        { key: tenantKey(scope), rule: { limit: 7, windowMs: 20_000 } },
        { key: toolKey(scope, 'search'), rule: { limit: 2, windowMs: 6_000 } },
      ];
    };
    const asks: { checks: RuleCheck[]; now: number }[] = [];
    for (let i = 0; i < 40; i++) {
      const id = ['alice', 'bob', 'carol'][i % 3]!;
      asks.push({ checks: i % 4 === 0 ? user(id) : three(id), now: 1_000_000 + 250 * Math.floor(i / 5) });
    }
    const fromRedis = await Promise.all(asks.map(({ checks, now }) => redis.decide(checks, now)));
    const fromMemory = asks.map(({ checks, now }) => memory.decide(checks, now));
    expect(fromRedis.map(view)).toEqual(fromMemory.map(view));
    expect(fromRedis.some((d) => d.allowed)).toBe(true);
    expect(fromRedis.some((d) => !d.allowed)).toBe(true);
  });

  it.each(ALGORITHM_NAMES)('%s: costs and adjustments asked in one tick come out as the memory store has them', async (algorithm) => {
    const redis = new RedisStore({ client, algorithm, prefix: `b${++prefixes}`, timeSource: 'caller' });
    const memory = new MemoryStore(ALGORITHMS[algorithm], 1_000);
    const costly = (id: string, cost: number): RuleCheck[] => {
      const scope = keyScope('http', id, 'acme');
      return [
        { key: userKey(scope), rule: { limit: 4, windowMs: 10_000 } },
        { key: `${userKey(scope)}|tok`, rule: { limit: 20, windowMs: 10_000, unit: 'tokens' }, cost },
        { key: `${tenantKey(scope)}|tok`, rule: { limit: 50, windowMs: 20_000, unit: 'tokens' }, cost },
      ];
    };
    const asks = Array.from({ length: 30 }, (_, i) => ({
      checks: costly(['alice', 'bob', 'carol'][i % 3]!, 1 + ((i * 7) % 9)),
      now: 1_000_000 + 200 * Math.floor(i / 6),
    }));
    const fromRedis = await Promise.all(asks.map(({ checks, now }) => redis.decide(checks, now)));
    const fromMemory = asks.map(({ checks, now }) => memory.decide(checks, now));
    expect(fromRedis.map(view)).toEqual(fromMemory.map(view));
    expect(fromRedis.some((d) => d.allowed)).toBe(true);
    expect(fromRedis.some((d) => !d.allowed)).toBe(true);
    // Every admitted request settles at once: refunds, smaller and larger actual counts.
    const now = 1_002_000;
    const settle = asks.map(({ checks }, i) => checks.map((c) => (i % 3 === 0 ? -(c.rule.unit === 'tokens' ? c.cost! : 1) : c.rule.unit === 'tokens' ? (i % 5) - 2 : 0)));
    await Promise.all(asks.map(({ checks }, i) => redis.adjust(fromRedis[i]!, checks, settle[i]!, now)));
    asks.forEach(({ checks }, i) => memory.adjust(fromMemory[i]!, checks, settle[i]!, now));
    const after = ['alice', 'bob', 'carol'].map((id) => costly(id, 1));
    const nextRedis = await Promise.all(after.map((checks) => redis.decide(checks, now)));
    expect(nextRedis.map(view)).toEqual(after.map((checks) => view(memory.decide(checks, now))));
  });

  it.each(ALGORITHM_NAMES)('%s: decisions and adjustments of one tick reach Redis in the order asked', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: `b${++prefixes}` });
    const tokens = (cost: number): RuleCheck[] => [{ key: '{http:alice}u:|tok', rule: { limit: 10, windowMs: 60_000, unit: 'tokens' }, cost }];
    const first = await store.decide(tokens(8), 0);
    // Asked in this order in one tick: the refund must not overtake the decision asked before it.
    const second = store.decide(tokens(8), 0);
    const refund = store.adjust(first, tokens(8), [-8]);
    expect((await second).allowed).toBe(false);
    await refund;
    const third = await store.decide(tokens(2), 0);
    expect(third.results[0]!.remaining).toBe(8);
    // And one asked between two decisions lands between them.
    const a = store.decide(tokens(8), 0);
    const back = store.adjust(third, tokens(2), [-2]);
    const b = store.decide(tokens(2), 0);
    expect([(await a).allowed, (await b).allowed]).toEqual([true, true]);
    await back;
    expect((await b).results[0]!.remaining).toBe(0);
  });

  it('a request with a bad cost fails alone; the rest of its batch is decided', async () => {
    const store = new RedisStore({ client, algorithm: 'fixed_window', prefix: `b${++prefixes}` });
    const tokens = (id: string, cost: number): RuleCheck[] => [
      { key: `${userKey(keyScope('http', id, undefined))}|tok`, rule: { limit: 10, windowMs: 60_000, unit: 'tokens' }, cost },
    ];
    const settled = await Promise.allSettled([store.decide(tokens('alice', 3), 0), store.decide(tokens('bob', 0.5), 0), store.decide(tokens('carol', 4), 0)]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(RangeError);
    expect((settled[2] as PromiseFulfilledResult<{ results: { remaining: number }[] }>).value.results[0]!.remaining).toBe(6);
  });

  it('a request that cannot be decided fails alone; the rest of its batch is decided', async () => {
    const store = new RedisStore({ client, algorithm: 'sliding_window', prefix: `b${++prefixes}` });
    // A key of the wrong type makes its request fail (WRONGTYPE) in the middle of the batch.
    await admin.hset(`b${prefixes}:${user('mallory')[0]!.key}`, 'x', '1');
    const settled = await Promise.allSettled(['alice', 'mallory', 'bob'].map((id) => store.decide(user(id), 0)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    expect(String((settled[1] as PromiseRejectedResult).reason.message)).toMatch(/WRONGTYPE/);
    for (const i of [0, 2]) expect((settled[i] as PromiseFulfilledResult<{ allowed: boolean }>).value.allowed).toBe(true);
    // Alice and Bob were charged once; Mallory's key is as it was.
    const next = await Promise.all(['alice', 'bob'].map((id) => store.decide(user(id), 0)));
    expect(next.map((d) => d.results[0]!.remaining)).toEqual([3, 3]);
    expect(await admin.hget(`b${prefixes}:${user('mallory')[0]!.key}`, 'x')).toBe('1');
  });
});
