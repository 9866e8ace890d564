import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import { inspector } from '../plugins/rate-limiter/redis-helpers.ts';
import { gatewayConfig, rateLimiterEntry, sendMessage, startGateways, type MessageResult, type RunningGateway } from './support/gateway-process.ts';

/**
 * A flood that costs Redis nothing: one user floods three real gateway processes that share one
 * redis-server. Once each gateway has been refused by Redis, it answers the flood from memory:
 * Redis runs no decision for it, nothing beyond the limit is admitted, and an operator's reset on
 * one gateway frees the user on all of them within a second.
 */
const enabled = redisTestsEnabled();
const TOKEN = 'flood-admin-token-0123456789';
const LIMIT = 5;

const gateways: RunningGateway[] = [];
const servers: RedisProcess[] = [];
const inspectors: Redis[] = [];
afterEach(async () => {
  for (const server of servers) server.resume();
  for (const client of inspectors.splice(0)) client.disconnect();
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function setUp(limiter: Record<string, unknown> = {}, count = 3): Promise<{ urls: string[]; redis: Redis; server: RedisProcess }> {
  const server = await startRedis();
  servers.push(server);
  const redis = inspector(server.url);
  inspectors.push(redis);
  const config = gatewayConfig([
    rateLimiterEntry({
      by_user: `${LIMIT}/m`,
      backend: 'redis',
      redis_url: server.url,
      // A loaded machine must not turn a slow answer into a local one: every decision is Redis's.
      redis_timeout_ms: 2_000,
      on_backend_error: 'closed',
      ...limiter,
    }),
  ]);
  (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
  const started = await startGateways(count, config);
  gateways.push(...started);
  return { urls: started.map((g) => g.url), redis, server };
}

const flooder = { user_id: 'flooder', text: 'hello' };

/** Commands Redis has run, by name (INFO commandstats), without the inspector's own INFO. */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const calls = new Map<string, number>();
  for (const [, name, count] of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) if (name !== 'info') calls.set(name!, Number(count));
  return calls;
}

function total(calls: Map<string, number>, only?: string): number {
  let sum = 0;
  for (const [name, count] of calls) if (only === undefined || name === only) sum += count;
  return sum;
}

/** `rounds` rounds of one request to each gateway at once; every answer. */
async function rounds(urls: readonly string[], count: number): Promise<MessageResult[]> {
  const results: MessageResult[] = [];
  for (let i = 0; i < count; i++) results.push(...(await Promise.all(urls.map((url) => sendMessage(url, flooder)))));
  return results;
}

const statuses = (results: readonly MessageResult[]) => results.map((r) => r.status);

describe.skipIf(!enabled)('refusal cache: one user flooding three gateways on one Redis', () => {
  it('refused requests cost Redis no decision once each gateway has been refused; nothing beyond the limit is admitted', async () => {
    const { urls, redis } = await setUp();
    // The limit, then enough refusals on every gateway for each to have read the user's state.
    const warmUp = await rounds(urls, 5);
    expect(statuses(warmUp).filter((s) => s === 200)).toHaveLength(LIMIT);
    expect(statuses(warmUp).filter((s) => s !== 200 && s !== 429)).toEqual([]);

    const before = await commandCalls(redis);
    const started = performance.now();
    const flood = await rounds(urls, 200);
    const seconds = (performance.now() - started) / 1000;
    const after = await commandCalls(redis);
    expect(statuses(flood).every((s) => s === 429)).toBe(true);
    for (const result of flood) {
      expect(result.body).toMatchObject({ error: 'rate_limited', retry_after: expect.any(Number) });
      expect(Number(result.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(result.headers.get('x-ratelimit-remaining')).toBe('0');
    }
    const ran = (name?: string) => total(after, name) - total(before, name);
    // 600 refusals, and no decision script ran for them (one per gateway allowed, for a machine so
    // loaded that a snapshot aged out before its refresh).
    expect(ran('evalsha')).toBeLessThanOrEqual(3);
    // What Redis did run grows with time, not with the flood: each gateway reads the user's state
    // (MULTI, LRANGE, TIME, EXEC) about twice a second while the flood goes on.
    expect(ran('exec')).toBeLessThanOrEqual(3 * (2 * Math.ceil(seconds) + 2));
    expect(ran()).toBeLessThanOrEqual(4 * ran('exec') + 3);
    // Each gateway says so in its metrics.
    for (const url of urls) {
      const metrics = await (await fetch(`${url}/metrics`)).text();
      const served = Number(/floodgate_ratelimit_cached_refusals_total (\d+)/.exec(metrics)?.[1] ?? 0);
      expect(served).toBeGreaterThan(150);
    }
  });

  it('with refusal_cache: false, the same flood costs Redis one decision per refused request', async () => {
    const { urls, redis } = await setUp({ refusal_cache: false });
    await rounds(urls, 5);
    const before = await commandCalls(redis);
    const flood = await rounds(urls, 100);
    const after = await commandCalls(redis);
    expect(statuses(flood).every((s) => s === 429)).toBe(true);
    // Requests to different gateways never share a call; one gateway's request per round has its own.
    expect(total(after, 'evalsha') - total(before, 'evalsha')).toBe(flood.length);
    for (const url of urls) expect(await (await fetch(`${url}/metrics`)).text()).not.toMatch(/floodgate_ratelimit_cached_refusals_total [1-9]/);
  });

  it('an operator’s reset on one gateway lets the user in on the others within a second, and only up to the limit', async () => {
    const { urls } = await setUp();
    await rounds(urls, 5);
    // Every gateway answers the flood from memory now.
    await rounds(urls, 3);
    const reset = await fetch(`${urls[0]}/v1/admin/limits/reset`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: flooder.user_id }),
    });
    expect(reset.status).toBe(200);
    const resetAt = performance.now();
    // The other two gateways, asked in turn until one admits.
    let admittedAfterMs: number | undefined;
    const others: MessageResult[] = [];
    while (admittedAfterMs === undefined && performance.now() - resetAt < 3_000) {
      const result = await sendMessage(urls[1 + (others.length % 2)]!, flooder);
      others.push(result);
      if (result.status === 200) admittedAfterMs = performance.now() - resetAt;
    }
    expect(admittedAfterMs).toBeDefined();
    expect(admittedAfterMs!).toBeLessThan(1_000);
    // And then the limit holds again, across all three.
    const rest = await rounds(urls, 4);
    const admitted = [...others, ...rest].filter((r) => r.status === 200);
    expect(admitted).toHaveLength(LIMIT);
    expect(statuses(rest).filter((s) => s !== 200 && s !== 429)).toEqual([]);
  });

  it('Redis paused mid-flood: the cached flood is refused for about a second at most, then on_backend_error decides', async () => {
    const { urls, server } = await setUp({ on_backend_error: 'open', redis_timeout_ms: 100 }, 1);
    const [url] = urls as [string];
    await rounds(urls, 8);
    const cachedSoFar = async () => Number(/floodgate_ratelimit_cached_refusals_total (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
    expect(await cachedSoFar()).toBeGreaterThan(0);
    // Two more, so the snapshot in use is fresh when Redis stops.
    await rounds(urls, 2);
    server.pause();
    const pausedAt = performance.now();
    const answers: { status: number; at: number }[] = [];
    while (performance.now() - pausedAt < 3_000) {
      answers.push({ status: (await sendMessage(url, flooder)).status, at: performance.now() - pausedAt });
      if (answers.filter((a) => a.status === 200).length >= 20) break;
    }
    const firstAdmitted = answers.findIndex((a) => a.status === 200);
    // Refused from memory (the state Redis held) until the next background read fails...
    expect(firstAdmitted).toBeGreaterThan(0);
    expect(answers.slice(0, firstAdmitted).every((a) => a.status === 429)).toBe(true);
    expect(answers[firstAdmitted]!.at).toBeLessThan(2_000);
    // ... then the failure policy ("open": admit) for as long as Redis does not answer.
    expect(answers.slice(firstAdmitted).every((a) => a.status === 200)).toBe(true);
    server.resume();
    // Back on Redis, whose state went through the pause: refused again.
    let status = 0;
    for (let i = 0; i < 100 && status !== 429; i++) {
      status = (await sendMessage(url, flooder)).status;
      if (status !== 429) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(429);
  });
});
