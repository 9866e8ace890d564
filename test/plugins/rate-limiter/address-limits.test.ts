import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HookResult, Violation } from '../../../src/hooks/schemas.ts';
import { IdentityHasher } from '../../../src/logger.ts';
import { freePort, redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { startHarness, type Harness } from './plugin-harness.ts';
import { allKeys, hashTag, inspector } from './redis-helpers.ts';

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

/** How many of `n` requests from `address` to `group` are admitted. */
async function admittedOf(h: Harness, n: number, address: string | undefined, group: 'messages' | 'admin' | 'webhooks' | 'metrics' = 'messages'): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < n; i++) if ((await h.request(address, group)).continue) admitted++;
  return admitted;
}

describe.each(BACKENDS)('by_address on %s', (backend) => {
  let harness: Harness | undefined;

  async function start(config: Record<string, unknown>, mode: 'enforce' | 'permissive' = 'enforce'): Promise<Harness> {
    const backendConfig =
      backend === 'redis' ? { backend: 'redis', redis_url: redis!.url, redis_key_prefix: `a${++prefixes}`, redis_timeout_ms: 1000 } : {};
    harness = await startHarness({ ...config, ...backendConfig }, undefined, mode);
    return harness;
  }

  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  it('counts each address on each route group apart, at the group’s own rate or the common one', async () => {
    const h = await start({ by_address: { rate: '3/h', routes: { admin: '2/h' } } });
    expect(await admittedOf(h, 5, '203.0.113.7', 'admin')).toBe(2);
    expect(await admittedOf(h, 5, '203.0.113.7', 'messages')).toBe(3);
    expect(await admittedOf(h, 5, '203.0.113.7', 'webhooks')).toBe(3);
    expect(await admittedOf(h, 5, '203.0.113.8', 'messages')).toBe(3);
    const refused = violationOf(await h.request('203.0.113.7', 'admin'));
    expect(refused).toMatchObject({
      code: 'rate_limited',
      httpStatus: 429,
      description: expect.stringMatching(/^Too many requests from your network\. Please wait \d+ minutes? and try again\.$/),
      details: { rule: 'address', window: '1h', limit: '2/h' },
      silent: false,
    });
    expect(refused.retryAfter).toBeGreaterThan(0);
    expect(refused.headers['Retry-After']).toBe(String(refused.retryAfter));
    expect(refused.headers['RateLimit-Policy']).toBe('"address";q=2;w=3600');
    expect(JSON.stringify(refused)).not.toContain('203.0.113');
  });

  it('leaves a route group without a rate unlimited', async () => {
    const h = await start({ by_address: { routes: { admin: '1/h' } } });
    expect(await admittedOf(h, 5, '203.0.113.7', 'messages')).toBe(5);
    expect(await admittedOf(h, 5, '203.0.113.7', 'admin')).toBe(1);
  });

  it('counts the IPv6 addresses of one /64 together, and another /64 apart; ipv6_prefix 128 counts each address', async () => {
    const h = await start({ by_address: { rate: '2/h' } });
    expect(await h.request('2001:db8:1:2::a')).toMatchObject({ continue: true });
    expect(await h.request('2001:DB8:1:2:ffff::b')).toMatchObject({ continue: true });
    expect((await h.request('2001:db8:1:2::c')).continue).toBe(false);
    expect(await admittedOf(h, 3, '2001:db8:1:3::a')).toBe(2);
    await h.teardown();
    const each = await start({ by_address: { rate: '2/h', ipv6_prefix: 128 } });
    expect(await admittedOf(each, 3, '2001:db8:1:2::a')).toBe(2);
    expect(await admittedOf(each, 3, '2001:db8:1:2::b')).toBe(2);
  });

  it('counts IPv4-mapped IPv6 as the IPv4 address it is', async () => {
    const h = await start({ by_address: { rate: '2/h' } });
    expect(await h.request('::ffff:192.0.2.1')).toMatchObject({ continue: true });
    expect(await h.request('192.0.2.1')).toMatchObject({ continue: true });
    expect((await h.request('::ffff:c000:201')).continue).toBe(false);
  });

  it('puts every request without an address in one shared bucket', async () => {
    const h = await start({ by_address: { rate: '2/h' } });
    expect(await admittedOf(h, 4, undefined)).toBe(2);
    expect(await admittedOf(h, 2, '198.51.100.1')).toBe(2);
  });

  it('makes a failed authentication count as failed_auth_cost requests, past the limit: the address waits', async () => {
    const h = await start({ by_address: { rate: '100/h', routes: { admin: '10/h' }, failed_auth_cost: 10 } });
    const good = {};
    expect((await h.request('203.0.113.9', 'admin', good)).continue).toBe(true);
    const guess = {};
    expect((await h.request('203.0.113.9', 'admin', guess)).continue).toBe(true);
    await h.authFailed(guess, '203.0.113.9');
    // 1 + 10 of 10: even the right token waits now.
    const locked = violationOf(await h.request('203.0.113.9', 'admin'));
    expect(locked.httpStatus).toBe(429);
    expect(locked.retryAfter).toBeGreaterThan(60);
    // Only the route group where it failed, and only that address.
    expect((await h.request('203.0.113.9', 'messages')).continue).toBe(true);
    expect((await h.request('203.0.113.10', 'admin')).continue).toBe(true);
    // A failure told twice (or for a request never checked) charges nothing more.
    await h.authFailed(guess, '203.0.113.9');
    await h.authFailed({}, '203.0.113.10');
    const view = (await h.addressLimits('203.0.113.10')) as { rules: { rule: string; used: number }[] };
    expect(view.rules.find((r) => r.rule === 'address:admin')).toMatchObject({ used: 1 });
  });

  it('with failed_auth_cost 1, a failed authentication costs what any request does', async () => {
    const h = await start({ by_address: { routes: { admin: '3/h' }, failed_auth_cost: 1 } });
    for (let i = 0; i < 3; i++) {
      const call = {};
      expect((await h.request('203.0.113.9', 'admin', call)).continue).toBe(true);
      await h.authFailed(call, '203.0.113.9');
    }
    expect((await h.request('203.0.113.9', 'admin')).continue).toBe(false);
  });

  it('never limits an exempt address; refuses a denied one with 403 on every route, before anything is counted', async () => {
    const h = await start({ by_address: { rate: '1/h', exempt: ['10.0.0.0/8', '2001:db8:e::/48'], deny: ['203.0.113.0/24', '10.6.6.6'] } });
    expect(await admittedOf(h, 5, '10.1.2.3')).toBe(5);
    expect(await admittedOf(h, 5, '2001:db8:e:1::1', 'admin')).toBe(5);
    for (const group of ['messages', 'admin', 'webhooks', 'metrics'] as const) {
      const denied = violationOf(await h.request('203.0.113.200', group));
      expect(denied).toMatchObject({ code: 'forbidden', httpStatus: 403, description: expect.stringMatching(/^Sorry, I can't take messages from you here\./) });
      expect(denied.retryAfter).toBeUndefined();
    }
    // Deny wins over exempt.
    expect(violationOf(await h.request('10.6.6.6')).httpStatus).toBe(403);
    const view = (await h.addressLimits('203.0.113.200')) as { denied?: boolean; rules: { used: number }[] };
    expect(view.denied).toBe(true);
    expect(view.rules.every((r) => r.used === 0)).toBe(true);
  });

  it('shows an address’s state by route group without naming it, and a reset frees it', async () => {
    const h = await start({ by_address: { rate: '2/h', routes: { admin: ['1/m', '5/h'] } } });
    await admittedOf(h, 3, '2001:db8:5:5::1', 'admin');
    await admittedOf(h, 1, '2001:db8:5:5::2', 'messages');
    const view = (await h.addressLimits('2001:db8:5:5::99')) as { rules: Record<string, unknown>[] };
    const byRule = Object.fromEntries(view.rules.map((r) => [r.rule, r]));
    expect(byRule['address:admin-1m']).toMatchObject({ route_group: 'admin', limit: '1/m', used: 1, remaining: 0 });
    expect(byRule['address:admin-1h']).toMatchObject({ route_group: 'admin', limit: '5/h', used: 1 });
    expect(byRule['address:messages']).toMatchObject({ used: 1, remaining: 1 });
    expect(JSON.stringify(view)).not.toContain('2001');
    expect(await h.resetAddress('2001:db8:5:5::1')).toMatchObject({ reset: true, keys_removed: 3 });
    expect((await h.request('2001:db8:5:5::3', 'admin')).continue).toBe(true);
  });

  it('logs an address locked out of the admin API once per 10 s, as a salted hash, and counts refusals in /metrics', async () => {
    const h = await start({ by_address: { routes: { admin: '1/h' } } });
    await admittedOf(h, 20, '198.51.100.23', 'admin');
    const lines = h.log.entries.filter((e) => typeof e.msg === 'string' && (e.msg as string).startsWith('client address'));
    expect(lines).toEqual([
      expect.objectContaining({
        msg: 'client address locked out of the admin API; its requests are refused before they are read',
        route_group: 'admin',
        subject: new IdentityHasher('test-salt').hash('198.51.100.23'),
        limit: '1/h',
      }),
    ]);
    expect(h.log.raw.join('\n')).not.toContain('198.51.100.23');
    expect(h.metrics.render()).toContain('floodgate_ratelimit_decisions_total{hook="preRequest",outcome="refused",rule="address"} 19');
  });

  it('blocks an address that keeps sending while refused, on all its route groups; the view shows it, a reset frees it', async () => {
    const h = await start({ by_address: { rate: '2/h' }, block: { after: 1, durations: ['1m', '10m'], subjects: ['address'] } });
    expect(await admittedOf(h, 2, '203.0.113.50')).toBe(2);
    expect(violationOf(await h.request('203.0.113.50')).code).toBe('rate_limited');
    const blocked = violationOf(await h.request('203.0.113.50'));
    expect(blocked).toMatchObject({ code: 'blocked', httpStatus: 429, silent: false, details: { rule: 'address', level: 1, block: '1m' } });
    expect(blocked.retryAfter).toBeGreaterThan(55);
    expect(blocked.retryAfter).toBeLessThanOrEqual(60);
    // The block is the address's, whichever route it asks for; another address is not held by it.
    expect(violationOf(await h.request('203.0.113.50', 'admin')).code).toBe('blocked');
    expect((await h.request('203.0.113.51', 'admin')).continue).toBe(true);
    const view = (await h.addressLimits('203.0.113.50')) as { block?: Record<string, unknown> };
    expect(view.block).toMatchObject({ blocked: true, level: 1 });
    expect(h.metrics.render()).toContain('floodgate_ratelimit_blocks_started_total{rule="address",level="1"} 1');
    await h.resetAddress('203.0.113.50');
    expect((await h.request('203.0.113.50', 'admin')).continue).toBe(true);
    expect((await h.addressLimits('203.0.113.50')) as { block?: Record<string, unknown> }).toMatchObject({ block: { blocked: false } });
  });

  it('listens to requests only once by_address is set: a reload that sets it starts', async () => {
    const h = await start({ by_user: '30/m' });
    expect(h.hooks()).not.toContain('preRequest');
    await h.reconfigure({ by_user: '30/m', by_address: { rate: '1/h' }, ...(backend === 'redis' ? { backend: 'redis', redis_url: redis!.url, redis_key_prefix: `a${prefixes}`, redis_timeout_ms: 1000 } : {}) });
    expect(h.hooks()).toEqual(expect.arrayContaining(['preRequest', 'authFailed']));
    expect(await admittedOf(h, 3, '192.0.2.44')).toBe(1);
  });
});

describe.each(BACKENDS)('deny_users and deny_tenants on %s', (backend) => {
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  it('refuses a denied user’s and a denied tenant’s messages and tool calls kindly (403), quiet on chat channels after the first, logged without ids', async () => {
    const backendConfig = backend === 'redis' ? { backend: 'redis', redis_url: redis!.url, redis_key_prefix: `d${++prefixes}`, redis_timeout_ms: 1000 } : {};
    const h = (harness = await startHarness({ by_user: '100/m', deny_users: [' Mallory '], deny_tenants: ['EvilCorp'], ...backendConfig }));
    const first = violationOf(await h.prompt({ user: 'MALLORY' }));
    expect(first).toMatchObject({ code: 'forbidden', httpStatus: 403, silent: false, details: { list: 'user' } });
    expect(first.description).toBe("Sorry, I can't take messages from you here. If you think this is a mistake, please contact the operator.");
    expect(violationOf(await h.prompt({ user: 'mallory' })).silent).toBe(true);
    expect(violationOf(await h.tool('search', { user: 'mallory' })).httpStatus).toBe(403);
    expect(violationOf(await h.prompt({ user: 'bob', tenant: ' evilcorp' }))).toMatchObject({ httpStatus: 403, details: { list: 'tenant' } });
    expect((await h.prompt({ user: 'bob' })).continue).toBe(true);
    expect((await h.prompt({ user: 'bob', tenant: 'goodcorp' })).continue).toBe(true);
    const log = h.log.raw.join('\n');
    expect(h.log.entries.filter((e) => e.msg === 'user on a deny list; request refused')).toHaveLength(2);
    expect(h.log.entries.filter((e) => e.msg === 'tenant on a deny list; request refused')).toHaveLength(1);
    for (const id of ['mallory', 'Mallory', 'evilcorp', 'EvilCorp']) expect(log).not.toContain(id);
    expect(h.metrics.render()).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="refused",rule="denied-user"} 2');
  });
});

describe('by_address when Redis cannot be reached', () => {
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.teardown();
    harness = undefined;
  });

  it('under on_backend_error "closed" lets requests through (metrics, health and the admin API stay up); the user limits refuse the messages', async () => {
    const port = await freePort();
    const h = (harness = await startHarness({
      by_user: '30/m',
      by_address: { rate: '10/m' },
      backend: 'redis',
      redis_url: `redis://127.0.0.1:${port}`,
      on_backend_error: 'closed',
    }));
    for (const group of ['metrics', 'health', 'admin', 'messages'] as const) expect((await h.request('192.0.2.1', group)).continue).toBe(true);
    expect(violationOf(await h.prompt())).toMatchObject({ code: 'limiter_unavailable', httpStatus: 503 });
    expect(h.metrics.render()).toContain('floodgate_ratelimit_decisions_total{hook="preRequest",outcome="unavailable",rule="none"} 4');
  });
});

// What only Redis has: the keys' layout, and the refusal cache in front of it.
if (BACKENDS.includes('redis' as never)) {
  describe('by_address on redis', () => {
    let harness: Harness | undefined;

    async function start(config: Record<string, unknown>): Promise<Harness> {
      harness = await startHarness({ ...config, backend: 'redis', redis_url: redis!.url, redis_key_prefix: `a${++prefixes}`, redis_timeout_ms: 1000 });
      return harness;
    }

    afterEach(async () => {
      await harness?.teardown();
      harness = undefined;
    });

    it('keeps an address’s keys under a hash tag of its own, like every other key', async () => {
      const h = await start({ by_address: { rate: '3/h', routes: { admin: ['1/m', '5/h'] } } });
      await h.request('2001:db8:7:7::1', 'admin');
      await h.request('203.0.113.7', 'messages');
      const client = inspector(redis!.url);
      try {
        const keys = (await allKeys(client)).filter((key) => key.startsWith(`a${prefixes}:`));
        expect(keys).toEqual([
          `a${prefixes}:{a:2001:db8:7:7::/64}r:admin|3600000`,
          `a${prefixes}:{a:2001:db8:7:7::/64}r:admin|60000`,
          `a${prefixes}:{a:203.0.113.7}r:messages|3600000`,
        ]);
        expect(keys.map(hashTag)).toEqual(['a:2001:db8:7:7::/64', 'a:2001:db8:7:7::/64', 'a:203.0.113.7']);
      } finally {
        client.disconnect();
      }
    });

    it('answers an address flood from memory once refused (the refusal cache), without admitting more', async () => {
      const h = await start({ by_address: { rate: '3/h' } });
      expect(await admittedOf(h, 60, '203.0.113.77', 'webhooks')).toBe(3);
      const cached = /floodgate_ratelimit_cached_refusals_total (\d+)/.exec(h.metrics.render());
      expect(Number(cached?.[1])).toBeGreaterThan(40);
    });
  });
}
