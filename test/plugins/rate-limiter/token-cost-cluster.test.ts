import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, type Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { CalendarPeriods } from '../../../plugins/rate-limiter/calendar/periods.ts';
import { keyScope, tenantKey, userKey } from '../../../plugins/rate-limiter/keys.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { redisTestsEnabled, startRedisCluster, type RedisCluster } from '../../support/redis.ts';
import { within } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

/**
 * On a Cluster each request is its own script call, routed by its first key; an adjustment is one call
 * too, for the keys of one request (they share the request's hash tag, so one slot).
 */
describe.skipIf(!enabled)('RedisStore costs and adjustments on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let prefixes = 0;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = createRedisClient({ cluster: cluster.seeds.map((s) => `${s.host}:${s.port}`), timeoutMs: 2_000 }) as Cluster;
    await within(client.connect(), 5_000, 'cluster connect()');
  });
  afterAll(async () => {
    await client?.quit();
    await cluster?.stop();
  });

  const tokens: Rule = { limit: 10, windowMs: 60_000, unit: 'tokens' };
  const requests: Rule = { limit: 5, windowMs: 60_000 };

  it.each(ALGORITHM_NAMES)('%s: refunds and commits reach the keys of 30 tenants on every master', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: `k${++prefixes}` });
    const checksOf = (i: number, cost: number): RuleCheck[] => {
      const scope = keyScope('http', `user-${i}`, `tenant-${i}`);
      return [
        { key: userKey(scope), rule: requests },
        { key: `${userKey(scope)}|tok`, rule: tokens, cost },
        { key: `${tenantKey(scope)}|tok`, rule: tokens, cost },
      ];
    };
    const users = Array.from({ length: 30 }, (_, i) => i);
    const first = await Promise.all(users.map((i) => store.decide(checksOf(i, 6), 0)));
    expect(first.every((d) => d.allowed)).toBe(true);
    // Even users cancel (a full refund); odd users used 9 tokens, not 6.
    await Promise.all(users.map((i) => store.adjust(first[i]!, checksOf(i, 6), i % 2 === 0 ? [-1, -6, -6] : [0, 3, 3])));
    const after = await Promise.all(users.map((i) => store.decide(checksOf(i, 1), 0)));
    for (const i of users) {
      expect(after[i]!.allowed).toBe(true);
      expect(after[i]!.results.map((r) => r.remaining)).toEqual(i % 2 === 0 ? [4, 9, 9] : [3, 0, 0]);
    }
  });

  it.each(ALGORITHM_NAMES)('%s: a monthly tenant budget (a calendar window, listed first) on every master, on the server clock', async (algorithm) => {
    const store = new RedisStore({ client, algorithm, prefix: `k${++prefixes}` });
    const month: Rule = { limit: 10, windowMs: 31 * 86_400_000, unit: 'tokens', calendar: new CalendarPeriods('Europe/Berlin', 'month') };
    const checksOf = (i: number, cost: number): RuleCheck[] => {
      const scope = keyScope('http', `user-${i}`, `tenant-${i}`);
      return [
        { key: `${tenantKey(scope)}|tok|cal:month:Europe/Berlin`, rule: month, cost },
        { key: userKey(scope), rule: requests },
      ];
    };
    const users = Array.from({ length: 30 }, (_, i) => i);
    const first = await Promise.all(users.map((i) => store.decide(checksOf(i, 6), Date.now())));
    expect(first.every((d) => d.allowed)).toBe(true);
    await Promise.all(users.map((i) => store.adjust(first[i]!, checksOf(i, 6), i % 2 === 0 ? [-6, -1] : [4, 0], Date.now())));
    const after = await Promise.all(users.map((i) => store.decide(checksOf(i, 1), Date.now())));
    for (const i of users) {
      expect(after[i]!.allowed).toBe(i % 2 === 0);
      expect(after[i]!.results.map((r) => r.remaining)).toEqual(i % 2 === 0 ? [9, 4] : [0, 4]);
    }
  });
});
