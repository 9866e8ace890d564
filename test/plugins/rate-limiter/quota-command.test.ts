import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { startHarness, type Harness } from './plugin-harness.ts';

const BACKENDS = ['memory', ...(redisTestsEnabled() ? ['redis'] : [])] as const;

let redis: RedisProcess | undefined;
let prefixes = 0;

beforeAll(async () => {
  if (BACKENDS.includes('redis' as never)) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(BACKENDS)('/limits on %s', (backend) => {
  let harness: Harness | undefined;

  async function start(config: Record<string, unknown>): Promise<Harness> {
    const backendConfig =
      backend === 'redis' ? { backend: 'redis', redis_url: redis!.url, redis_key_prefix: `lc${++prefixes}`, redis_timeout_ms: 1000 } : {};
    harness = await startHarness({ ...config, ...backendConfig }, new ManualClock(1_000_000));
    return harness;
  }

  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  it('tells the user what is left in each window and when it fills up again', async () => {
    const h = await start({ by_user: { rate: ['30/m', '500/h'], tokens: '10000/h' }, by_tool: { search: '5/m' } });
    for (let i = 0; i < 3; i++) expect((await h.prompt({ estimatedTokens: 200 })).continue).toBe(true);
    expect((await h.tool('search')).continue).toBe(true);
    const text = await h.command('limits');
    expect(text).toContain('Messages: 27 of 30 left per minute, back to 30 in');
    expect(text).toContain('Messages: 497 of 500 left per hour, back to 500 in');
    expect(text).toContain('Tokens: 9,400 of 10,000 left per hour');
    expect(text).toContain('The search tool: 4 of 5 left per minute');
  });

  it('costs nothing: asking a hundred times leaves every count as it was', async () => {
    const h = await start({ by_user: '2/m' });
    for (let i = 0; i < 100; i++) await h.command('limits');
    expect((await h.prompt()).continue).toBe(true);
    expect((await h.prompt()).continue).toBe(true);
    expect((await h.prompt()).continue).toBe(false);
    expect(await h.command('limits')).toContain('Messages: 0 of 2 left per minute');
  });

  it('names no id, and leaves shadow rules out', async () => {
    const h = await start({ by_user: '30/m', by_tenant: '100/m', by_tool: { search: { rate: '5/m', shadow: true } } });
    await h.prompt({ user: 'Alice@Example.com', tenant: 'acme-corp' });
    const text = await h.command('limits', { user: 'Alice@Example.com', tenant: 'acme-corp' });
    expect(text).toContain('Messages: 29 of 30 left per minute');
    expect(text).toContain('Messages for your whole team: 99 of 100 left per minute');
    // The operator sees the shadow rule; the user is not told of it.
    const view = (await h.limits({ user_id: 'Alice@Example.com', tenant_id: 'acme-corp' })) as { rules: { rule: string; shadow?: boolean }[] };
    expect(view.rules).toContainEqual(expect.objectContaining({ rule: 'tool:search', shadow: true }));
    expect(text).not.toContain('search');
    expect(text.toLowerCase()).not.toContain('alice');
    expect(text).not.toContain('acme');
  });

  it('counts concurrency caps among what it reports', async () => {
    const h = await start({ by_user: { rate: '30/m', max_concurrent: 2 } });
    const { call, result } = h.begin();
    expect((await result).continue).toBe(true);
    expect(await h.command('limits')).toContain('Requests in progress at a time: 1 of 2.');
    await h.end(call, 'completed');
  });
});
