import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HookResult, Violation } from '../../../src/hooks/schemas.ts';
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

function violationOf(result: HookResult): Violation {
  if (result.continue) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result.violation;
}

interface Row {
  rule: string;
  used: number;
  remaining: number;
  shadow?: boolean;
}

async function rows(harness: Harness, tenant?: string): Promise<Record<string, Row>> {
  const view = (await harness.limits(tenant === undefined ? {} : { tenant_id: tenant })) as { rules: Row[] };
  return Object.fromEntries(view.rules.map((row) => [row.rule, row]));
}

async function inFlight(harness: Harness, tenant?: string): Promise<Record<string, number>> {
  const view = (await harness.limits(tenant === undefined ? {} : { tenant_id: tenant })) as {
    concurrency: { rule: string; in_flight: number }[];
  };
  return Object.fromEntries(view.concurrency.map((row) => [row.rule, row.in_flight]));
}

describe.each(BACKENDS)('quotas on %s', (backend) => {
  let harness: Harness | undefined;

  async function start(config: Record<string, unknown>, mode: 'enforce' | 'permissive' = 'enforce'): Promise<Harness> {
    const backendConfig =
      backend === 'redis' ? { backend: 'redis', redis_url: redis!.url, redis_key_prefix: `q${++prefixes}`, redis_timeout_ms: 1000 } : {};
    harness = await startHarness({ ...config, ...backendConfig }, undefined, mode);
    return harness;
  }

  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  describe('several windows and exemptions', () => {
    it('admits only while every window admits, and the refusal names the window, never the user', async () => {
      const h = await start({ by_user: ['2/m', '3/h'] });
      expect((await h.prompt()).continue).toBe(true);
      expect((await h.prompt()).continue).toBe(true);
      const refused = violationOf(await h.prompt());
      expect(refused.details).toMatchObject({ rule: 'user', window: '1m', limit: '2/m' });
      expect(JSON.stringify(refused)).not.toContain('alice');
      const view = await rows(h);
      // The refused request was charged to neither window.
      expect(view['user-1m']).toMatchObject({ used: 2 });
      expect(view['user-1h']).toMatchObject({ used: 2 });
    });

    it('an exempt user or tenant is never limited, matched on the normalised id', async () => {
      const h = await start({ by_user: '1/h', exempt_users: [' ALICE '], exempt_tenants: ['Acme'] });
      for (let i = 0; i < 3; i++) expect((await h.prompt({ user: 'alice' })).continue).toBe(true);
      for (let i = 0; i < 3; i++) expect((await h.prompt({ user: 'bob', tenant: ' acme' })).continue).toBe(true);
      expect((await h.prompt({ user: 'bob' })).continue).toBe(true);
      expect((await h.prompt({ user: 'bob' })).continue).toBe(false);
    });
  });

  describe('token budgets', () => {
    const config = { by_user: { rate: '100/h', tokens: '1000/h' } };

    it('reserves each estimate and refuses a call that would go over the budget', async () => {
      const h = await start({ ...config, message: 'At most {limit}. Try again in {retry_after}.' });
      expect((await h.begin({ estimatedTokens: 400 }).result).continue).toBe(true);
      expect((await h.begin({ estimatedTokens: 400 }).result).continue).toBe(true);
      const refused = violationOf(await h.begin({ estimatedTokens: 400 }).result);
      expect(refused).toMatchObject({ code: 'rate_limited', httpStatus: 429, details: { rule: 'user', limit: '1000/h' } });
      expect(refused.description).toMatch(/^At most 1000 tokens per hour\. Try again in \d+ (seconds|minutes)\.$/);
      expect(refused.description).not.toContain('alice');
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 800, remaining: 200 });
    });

    it('postPromptFetch replaces the estimate with the actual count, in both directions', async () => {
      const h = await start(config);
      const first = h.begin({ estimatedTokens: 400 });
      await first.result;
      const second = h.begin({ estimatedTokens: 400 });
      await second.result;
      await h.end(first.call, 'completed', 100);
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 500 });
      // 300 freed: a third call of 400 now fits.
      expect((await h.begin({ estimatedTokens: 400 }).result).continue).toBe(true);
      await h.end(second.call, 'completed', 450);
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 950, remaining: 50 });
      // Requests are counted once each, whatever the tokens did.
      expect((await rows(h)).user).toMatchObject({ used: 3 });
    });

    it('a call that used more than its budget puts the user in debt: later calls wait', async () => {
      const h = await start(config);
      const call = h.begin({ estimatedTokens: 10 });
      await call.result;
      await h.end(call.call, 'completed', 1500);
      expect((await rows(h))['user-tokens']).toMatchObject({ remaining: 0 });
      expect(violationOf(await h.begin({ estimatedTokens: 1 }).result).code).toBe('rate_limited');
    });

    it('refuses at once, with its own reason, one call larger than the whole budget; nothing is charged', async () => {
      const h = await start(config);
      const refused = violationOf(await h.begin({ estimatedTokens: 1001 }).result);
      expect(refused).toMatchObject({ code: 'request_too_large', httpStatus: 413, details: { tokens: 1001, limit: '1000/h' } });
      expect(refused.description).toBe(
        'Sorry, that request is too large: it needs about 1001 tokens, and the limit is 1000 tokens per hour. Please make it shorter.',
      );
      const after = await rows(h);
      expect(after.user).toMatchObject({ used: 0 });
      expect(after['user-tokens']).toMatchObject({ used: 0 });
    });

    it('a refused call leaves no trace in any window', async () => {
      const h = await start({ by_user: { rate: ['100/h', '1000/d'], tokens: ['1000/h', '5000/d'] } });
      await h.begin({ estimatedTokens: 900 }).result;
      const before = await rows(h);
      expect(violationOf(await h.begin({ estimatedTokens: 200 }).result).code).toBe('rate_limited');
      expect(await rows(h)).toEqual(before);
    });

    it('a call cancelled before it ran gives back its request and its tokens, in every window', async () => {
      const h = await start({ by_user: { rate: ['100/h', '1000/d'], tokens: ['1000/h', '5000/d'] } });
      const untouched = await rows(h);
      const call = h.begin({ estimatedTokens: 300 });
      await call.result;
      expect((await rows(h))['user-tokens-1h']).toMatchObject({ used: 300 });
      await h.end(call.call, 'cancelled');
      expect(await rows(h)).toEqual(untouched);
    });

    it('an abort before postPromptFetch counts as a cancellation; after it, changes nothing', async () => {
      const h = await start(config);
      const aborted = h.begin({ estimatedTokens: 300 });
      await aborted.result;
      aborted.call.abort();
      await expect.poll(async () => (await rows(h))['user-tokens']!.used).toBe(0);
      expect((await rows(h)).user).toMatchObject({ used: 0 });

      const finished = h.begin({ estimatedTokens: 300 });
      await finished.result;
      await h.end(finished.call, 'completed', 200);
      finished.call.abort();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 200 });
    });

    it('a call without an estimate reserves one token, then commits what it used', async () => {
      const h = await start(config);
      const call = h.begin({});
      expect((await call.result).continue).toBe(true);
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 1 });
      await h.end(call.call, 'completed', 321);
      expect((await rows(h))['user-tokens']).toMatchObject({ used: 321 });
    });

    it('tenant budgets add up every user of the tenant', async () => {
      const h = await start({ by_user: '100/h', by_tenant: { tokens: '1000/h' } });
      expect((await h.begin({ user: 'alice', tenant: 'acme', estimatedTokens: 600 }).result).continue).toBe(true);
      expect(violationOf(await h.begin({ user: 'bob', tenant: 'acme', estimatedTokens: 600 }).result).details).toMatchObject({ rule: 'tenant' });
      expect((await h.begin({ user: 'bob', tenant: 'other', estimatedTokens: 600 }).result).continue).toBe(true);
    });
  });

  describe('concurrency cap', () => {
    it('a call beyond max_concurrent waits for a slot and runs when one frees', async () => {
      const h = await start({ by_user: { rate: '100/h', max_concurrent: 2, queue_timeout_ms: 5000 } });
      const a = h.begin();
      const b = h.begin();
      await Promise.all([a.result, b.result]);
      expect(await inFlight(h)).toEqual({ 'user-concurrency': 2 });
      const c = h.begin();
      let settled = false;
      void c.result.then(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(settled).toBe(false);
      await h.end(a.call, 'completed');
      expect((await c.result).continue).toBe(true);
      await h.end(b.call, 'failed');
      await h.end(c.call, 'completed');
      expect(await inFlight(h)).toEqual({ 'user-concurrency': 0 });
    });

    it('refuses a call that waited queue_timeout_ms, with a reply that names no one', async () => {
      const h = await start({ by_user: { max_concurrent: 1, queue_timeout_ms: 100 } });
      const held = h.begin();
      await held.result;
      const refused = violationOf(await h.begin().result);
      expect(refused).toMatchObject({
        code: 'concurrency_limited',
        httpStatus: 429,
        retryAfter: 1,
        details: { rule: 'user', max_concurrent: 1 },
      });
      expect(refused.description).toBe('Sorry, you have 1 request in progress already. Please wait for one to finish and try again.');
      // The plugin tells the host how long it may wait, so the wait is not taken for a hung plugin.
      expect(h.queueMs()).toBe(100);
    });

    it('a cancelled call frees its slot; a call aborted while queued never takes one', async () => {
      const h = await start({ by_user: { rate: '100/h', max_concurrent: 1, queue_timeout_ms: 5000 } });
      const held = h.begin();
      await held.result;
      const queued = h.begin();
      queued.call.abort();
      expect(violationOf(await queued.result).code).toBe('concurrency_limited');
      // Cancelled while queued: it never ran, so it used no quota.
      expect((await rows(h)).user).toMatchObject({ used: 1 });
      held.call.abort();
      await expect.poll(async () => (await inFlight(h))['user-concurrency']).toBe(0);
      const next = h.begin();
      expect((await next.result).continue).toBe(true);
      expect(await inFlight(h)).toEqual({ 'user-concurrency': 1 });
    });

    it('caps a tenant across its users, and tells them it is their team', async () => {
      const h = await start({ by_user: '100/h', by_tenant: { max_concurrent: 1 } });
      await h.begin({ user: 'alice', tenant: 'acme' }).result;
      const refused = violationOf(await h.begin({ user: 'bob', tenant: 'acme' }).result);
      expect(refused.description).toBe('Sorry, your team has 1 request in progress already. Please wait for one to finish and try again.');
      expect((await h.begin({ user: 'bob', tenant: 'globex' }).result).continue).toBe(true);
    });

    it('a permissive limiter never makes a call wait for a slot', async () => {
      // A minute's queue: waiting it would fail the test by its timeout.
      const h = await start({ by_user: { max_concurrent: 1, queue_timeout_ms: 60_000 } }, 'permissive');
      await h.begin().result;
      const over = violationOf(await h.begin().result);
      // Reported as it would be refused (the host logs it and lets it through), without the wait.
      expect(over.code).toBe('concurrency_limited');
      expect(h.queueMs()).toBe(0);
    });

    it('a call refused by its rate gives its slot back at once', async () => {
      const h = await start({ by_user: { rate: '1/h', max_concurrent: 1 } });
      const first = h.begin();
      await first.result;
      await h.end(first.call, 'completed');
      expect(violationOf(await h.begin().result).code).toBe('rate_limited');
      expect(await inFlight(h)).toEqual({ 'user-concurrency': 0 });
    });

    it('1,000 calls cancelled at random points leak no slot and never exceed the cap', async () => {
      const h = await start({ by_user: { max_concurrent: 3, queue_timeout_ms: 10_000 }, by_tenant: { max_concurrent: 5 } });
      let seed = 42;
      const random = (): number => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const running = new Map<string, number>();
      let worst = 0;
      const one = async (i: number): Promise<void> => {
        const user = `user-${i % 3}`;
        const { call, result } = h.begin({ user, tenant: 'acme' });
        const point = random();
        if (point < 0.25) call.abort(); // before it is admitted (maybe while queued)
        const answer = await result;
        if (!answer.continue) return;
        running.set(user, (running.get(user) ?? 0) + 1);
        worst = Math.max(worst, ...running.values());
        await pause(Math.floor(random() * 3));
        running.set(user, running.get(user)! - 1);
        if (point < 0.5) call.abort(); // while running, before the end is reported
        else if (point < 0.75) await h.end(call, 'cancelled');
        else await h.end(call, 'completed');
        if (random() < 0.5) call.abort(); // after the end: changes nothing
      };
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 1000; i++) {
        calls.push(one(i));
        if (i % 50 === 0) await pause(1);
      }
      await Promise.all(calls);
      expect(worst).toBeLessThanOrEqual(3);
      expect(worst).toBe(3);
      for (const user of ['user-0', 'user-1', 'user-2']) {
        // Aborts release on their event; give the last ones a moment to land.
        await expect
          .poll(async () => ((await h.limits({ user_id: user, tenant_id: 'acme' })) as { concurrency: unknown }).concurrency, { timeout: 2000 })
          .toEqual([
            { rule: 'user-concurrency', max_concurrent: 3, in_flight: 0 },
            { rule: 'tenant-concurrency', max_concurrent: 5, in_flight: 0 },
          ]);
      }
    }, 60_000);
  });

  describe('shadow settings', () => {
    it('counts and reports a shadow setting but never refuses for it', async () => {
      const h = await start({ by_user: '100/h', by_tenant: { rate: '2/h', shadow: true } });
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await h.prompt({ tenant: 'acme' }));
      expect(results.every((r) => r.continue)).toBe(true);
      // Shadow rules are not the client's business: no headers name them.
      expect(JSON.stringify(results)).not.toContain('tenant');
      const tenant = (await rows(h, 'acme')).tenant!;
      expect(tenant).toMatchObject({ used: 2, remaining: 0, shadow: true });
      await expect.poll(() => h.log.entries.filter((e) => e.msg === 'shadow rule would refuse; request allowed').length).toBe(1);
      const lines = h.log.entries.filter((e) => e.msg === 'shadow rule would refuse; request allowed');
      expect(lines[0]).toMatchObject({ rule: 'tenant', limit: '2/h', mode: 'shadow' });
      expect(JSON.stringify(h.log.entries)).not.toContain('acme');
      await expect
        .poll(() => h.metrics.render())
        .toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="shadow_refused",rule="tenant"} 3');
    });

    it('a request the enforced rules refuse is not counted by a shadow setting', async () => {
      const h = await start({ by_user: '1/h', by_tenant: { rate: '10/h', shadow: true } });
      expect((await h.prompt({ tenant: 'acme' })).continue).toBe(true);
      expect((await h.prompt({ tenant: 'acme' })).continue).toBe(false);
      expect((await rows(h, 'acme')).tenant).toMatchObject({ used: 1 });
    });

    it('shadow token budgets are reserved and settled like enforced ones', async () => {
      const h = await start({ by_user: { rate: '100/h' }, by_tenant: { tokens: '1000/h', shadow: true } });
      const call = h.begin({ tenant: 'acme', estimatedTokens: 800 });
      expect((await call.result).continue).toBe(true);
      expect((await h.begin({ tenant: 'acme', estimatedTokens: 800 }).result).continue).toBe(true);
      await h.end(call.call, 'completed', 100);
      expect((await rows(h, 'acme'))['tenant-tokens']).toMatchObject({ used: 100, shadow: true });
    });

    it('a shadow tool rate is reported, never enforced', async () => {
      const h = await start({ by_user: '100/h', by_tool: { search: { rate: '1/h', shadow: true } } });
      expect((await h.tool('search')).continue).toBe(true);
      expect((await h.tool('search')).continue).toBe(true);
      // Shadow decisions never hold the request up: on Redis they land just after it.
      await expect.poll(() => h.log.entries.filter((e) => e.msg === 'shadow rule would refuse; request allowed').length).toBe(1);
    });
  });
});
