import { afterEach, describe, expect, it } from 'vitest';
import type { HookResult } from '../../../src/hooks/schemas.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { startHarness, type Harness } from './plugin-harness.ts';
import { eventually, within } from './redis-helpers.ts';

/**
 * The Redis backend as one unit: the rate store, the concurrency slots and the operator's view share
 * one client and one breaker, and one failure policy decides for all of them.
 */
const enabled = redisTestsEnabled();
/** Long, so that a call that did wait on Redis cannot pass for one that did not. */
const REDIS_TIMEOUT_MS = 400;

let redis: RedisProcess | undefined;
let harness: Harness | undefined;
afterEach(async () => {
  await harness?.teardown();
  harness = undefined;
  redis?.resume();
  await redis?.stop();
  redis = undefined;
});

function codeOf(result: HookResult): string {
  return result.continue ? 'admitted' : result.violation.code;
}

describe.runIf(enabled)('Redis backend: one breaker, one failure policy', () => {
  it('slots failing on a paused Redis open the breaker for the rate store too; then every call is refused as unavailable at once', async () => {
    redis = await startRedis();
    harness = await startHarness({
      backend: 'redis',
      redis_url: redis.url,
      redis_timeout_ms: REDIS_TIMEOUT_MS,
      on_backend_error: 'closed',
      by_user: { rate: '100/m', max_concurrent: 5 },
    });
    expect(codeOf(await harness.prompt())).toBe('admitted');
    redis.pause();
    // The first calls wait out the Redis timeout on the slots, and open the one breaker.
    const early: string[] = [];
    for (let i = 0; i < 3; i++) early.push(codeOf(await within(harness.prompt({ user: `u${i}` }), 5_000, `call ${i}`)));
    expect(early).toEqual(['limiter_unavailable', 'limiter_unavailable', 'limiter_unavailable']);
    await eventually(() => harness!.log.raw.some((line) => line.includes('redis backend failing')), 2_000, 'the breaker opening');
    // From now on nobody waits on Redis, not the slots and not the rates (same breaker): twenty
    // calls are all answered before a single Redis timeout could have passed.
    const started = performance.now();
    const later = await Promise.all(Array.from({ length: 20 }, (_, i) => harness!.prompt({ user: `v${i}` })));
    expect(later.map(codeOf)).toEqual(Array(20).fill('limiter_unavailable'));
    expect(performance.now() - started).toBeLessThan(REDIS_TIMEOUT_MS);
    const refused = later[0]!;
    if (!refused.continue) expect(refused.violation).toMatchObject({ httpStatus: 503, retryAfter: 1 });
    // One breaker: its opening is logged once, whatever part of the backend failed.
    expect(harness.log.raw.filter((line) => line.includes('redis backend failing'))).toHaveLength(1);
  });

  it('the operator view answers while Redis is down, from this gateway’s own counts, and says so', async () => {
    redis = await startRedis();
    harness = await startHarness({ backend: 'redis', redis_url: redis.url, redis_timeout_ms: 50, on_backend_error: 'fallback', by_user: '5/m' });
    await harness.prompt();
    const live = (await harness.limits({})) as Record<string, unknown>;
    expect(live).not.toHaveProperty('backend_unavailable');
    expect(live.rules).toMatchObject([{ rule: 'user', used: 1, remaining: 4 }]);

    await redis.kill();
    // Decided in this process while Redis is away (fallback): two requests.
    for (let i = 0; i < 5 && !harness.log.raw.some((l) => l.includes('redis backend failing')); i++) await harness.prompt();
    await harness.prompt();
    const down = (await within(harness.limits({}), 2_000, 'the view')) as { backend_unavailable?: boolean; rules: { used: number }[] };
    expect(down.backend_unavailable).toBe(true);
    expect(down.rules[0]!.used).toBeGreaterThanOrEqual(1);
  });
});
