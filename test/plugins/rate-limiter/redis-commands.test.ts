import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisConcurrencyGate } from '../../../plugins/rate-limiter/concurrency/redis.ts';
import { connectWithin, createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore, type RedisClient } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';

/**
 * ioredis copies a client's defined commands into each auto-pipeline when it makes it. A command
 * defined later is missing from a pipeline already waiting: the call is rejected, but its callback
 * stays behind, and when the pipeline runs ioredis throws an uncaught TypeError that would take the
 * gateway down. Every script must therefore be defined before the client sends anything.
 */
describe.skipIf(!redisTestsEnabled())('script commands on an auto-pipelining client', () => {
  let redis: RedisProcess;
  let client: RedisClient;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    client?.disconnect();
    await redis.stop();
  });

  it('a first tick that uses every command at once, after other traffic, answers each call', async () => {
    client = createRedisClient({ url: redis.url, timeoutMs: 1000 });
    const crashes: unknown[] = [];
    const onCrash = (error: unknown): void => void crashes.push(error);
    process.on('uncaughtException', onCrash);
    try {
      for (const algorithm of ['sliding_window', 'fixed_window', 'token_bucket'] as const) {
        const store = new RedisStore({ client, algorithm, prefix: `cmd-${algorithm}` });
        const gate = new RedisConcurrencyGate({ client, prefix: `cmd-${algorithm}`, leaseMs: 5000 });
        await connectWithin(client, 2000).catch(() => undefined);
        const requests: Rule = { limit: 5, windowMs: 60_000 };
        const tokens: Rule = { limit: 100, windowMs: 60_000, unit: 'tokens' };
        // Other traffic first: the auto-pipeline of this tick already exists when the scripts are used.
        const ping = client.ping();
        const decided = store.decide(
          [
            { key: '{u1}a', rule: requests },
            { key: '{u1}b', rule: tokens, cost: 10 },
          ],
          0,
        );
        const one = gate.acquire({ limits: [{ key: '{u1}c', limit: 1, label: 'user' }], queueTimeoutMs: 0 });
        const two = gate.acquire({
          limits: [
            { key: '{u2}c', limit: 1, label: 'user' },
            { key: '{u2}d', limit: 1, label: 'tenant' },
          ],
          queueTimeoutMs: 0,
        });
        const [pong, decision, first, second] = await Promise.all([ping, decided, one, two]);
        expect(pong).toBe('PONG');
        expect(decision.allowed).toBe(true);
        expect(first.ok && second.ok).toBe(true);
        await store.adjust(decision, [{ key: '{u1}a', rule: requests }, { key: '{u1}b', rule: tokens, cost: 10 }], [0, -5]);
        if (first.ok) first.release();
        if (second.ok) second.release();
        await gate.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(crashes).toEqual([]);
    } finally {
      process.off('uncaughtException', onCrash);
    }
  });
});
