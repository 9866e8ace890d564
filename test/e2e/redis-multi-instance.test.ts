import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedis, startRedisCluster, redisTestsEnabled, type RedisCluster, type RedisProcess } from '../support/redis.ts';
import {
  gatewayConfig,
  logLines,
  rateLimiterEntry,
  sendTimed,
  startFlood as startFloodUntracked,
  startGateways,
  type Flood,
  type RunningGateway,
  type TimedResult,
} from './support/gateway-process.ts';

/**
 * Several real gateway processes sharing one limit through a real redis-server (and a real Redis
 * Cluster). These tests are about sharing and exactness, not about latency, so the Redis timeout is
 * raised from its 50 ms default: on a busy 2-core machine a slow command would otherwise be decided
 * locally by the fallback policy (by design, see redis-chaos.test.ts), and each test checks that no
 * gateway ever fell back.
 */

const gateways: RunningGateway[] = [];
const servers: RedisProcess[] = [];
const clusters: RedisCluster[] = [];
const clients: Redis[] = [];
const floods: Flood[] = [];

afterEach(async () => {
  // A test that failed mid-flood must not leave its flood running.
  await Promise.allSettled(floods.splice(0).map((f) => f.stop()));
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
});

/** Starts `count` gateways for each config, all at once; every one that started is cleaned up after the test. */
async function launch<T extends Record<string, unknown>[]>(count: number, ...configs: T): Promise<{ [K in keyof T]: RunningGateway[] }> {
  const settled = await Promise.allSettled(configs.map((config) => startGateways(count, gatewayConfig([rateLimiterEntry(config)]))));
  for (const s of settled) if (s.status === 'fulfilled') gateways.push(...s.value);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<RunningGateway[]>).value) as { [K in keyof T]: RunningGateway[] };
}

function startFlood(...args: Parameters<typeof startFloodUntracked>): Flood {
  const flood = startFloodUntracked(...args);
  floods.push(flood);
  return flood;
}

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
}

/** The Redis list key of a user's sliding window (prefix "fg", HTTP channel, no tenant). */
/** A user's key for a rule over `windowMs` (keys carry their window). */
const userKey = (user: string, windowMs: number) => `fg:{http:${user}}u:|${windowMs}`;

/**
 * Sends `total` messages for one body, round-robin over the gateways, `batch` at a time concurrently
 * (each batch spans every gateway), and returns every answer.
 */
async function floodInBatches(urls: readonly string[], body: (i: number) => unknown, total: number, batch: number): Promise<TimedResult[]> {
  const results: TimedResult[] = [];
  for (let start = 0; start < total; start += batch) {
    const round = Array.from({ length: Math.min(batch, total - start) }, (_, j) => {
      const i = start + j;
      return sendTimed(urls[i % urls.length]!, body(i), i % urls.length);
    });
    results.push(...(await Promise.all(round)));
  }
  return results;
}

const admitted = (results: readonly TimedResult[]) => results.filter((r) => r.status === 200);

function expectOnlyLimitAnswers(results: readonly TimedResult[]): void {
  const unexpected = results.filter((r) => r.status !== 200 && r.status !== 429);
  expect(unexpected.map((r) => `${r.status} ${r.raw}`)).toEqual([]);
}

function expectNoFallback(all: readonly RunningGateway[]): void {
  for (const g of all) expect(logLines(g, 'redis backend failing')).toEqual([]);
}

/**
 * Whether some N+1 admissions certainly fell within less than W of each other. Each decision was made
 * between its request's send time and the time its answer arrived, so N+1 admissions all sent at or
 * after `a` and all answered before `a + W` were decided within less than W: a violation whatever the
 * client-side jitter. Returns the tightest such span found (it must stay >= W).
 */
function tightestSpan(admissions: readonly TimedResult[], limit: number): number {
  let tightest = Infinity;
  for (const anchor of admissions) {
    const answers = admissions
      .filter((r) => r.sentAt >= anchor.sentAt)
      .map((r) => r.answeredAt)
      .sort((a, b) => a - b);
    const last = answers[limit];
    if (last !== undefined) tightest = Math.min(tightest, last - anchor.sentAt);
  }
  return tightest;
}

function report(figures: Record<string, unknown>): void {
  if (process.env.FLOODGATE_E2E_FIGURES) console.info(JSON.stringify(figures));
}

describe.skipIf(!redisTestsEnabled())('rate limiting shared by several gateway processes through Redis', () => {
  it('admits one user exactly N times across three gateways with redis, and 3N with memory', async () => {
    const limit = 10;
    const redis = await startRedis();
    servers.push(redis);
    const base = { by_user: `${limit}/5s`, algorithm: 'sliding_window' };
    const [shared, local] = await launch(
      3,
      { ...base, backend: 'redis', redis_url: redis.url, redis_timeout_ms: 1000 },
      { ...base, backend: 'memory' },
    );
    const body = (i: number) => ({ user_id: 'flooder', text: `hello ${i}` });

    // 60 messages, 6 in flight at a time (2 per gateway), all well inside the 5 s window.
    const onRedis = await floodInBatches(shared.map((g) => g.url), body, 60, 6);
    const inMemory = await floodInBatches(local.map((g) => g.url), body, 60, 6);
    for (const results of [onRedis, inMemory]) {
      expectOnlyLimitAnswers(results);
      const span = Math.max(...results.map((r) => r.answeredAt)) - Math.min(...results.map((r) => r.sentAt));
      expect(span).toBeLessThan(4_000);
    }

    // Redis: one limit for the user, whichever gateway the message reached.
    const redisAdmitted = admitted(onRedis);
    expect(redisAdmitted).toHaveLength(limit);
    // Every gateway admitted some of them (the first batch reaches all three), so the limit was shared...
    for (let g = 0; g < 3; g++) expect(redisAdmitted.filter((r) => r.target === g).length).toBeGreaterThan(0);
    // ...and each admission saw the one shared count: remaining 9, 8, ..., 0, each exactly once.
    const remaining = redisAdmitted.map((r) => Number(r.headers.get('x-ratelimit-remaining'))).sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: limit }, (_, i) => i));
    for (const refused of onRedis.filter((r) => r.status === 429)) {
      expect(refused.body.error).toBe('rate_limited');
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(5);
    }
    // Redis holds the truth: the user's window lists exactly the 10 admissions.
    expect(await client(redis.port).llen(userKey('flooder', 5_000))).toBe(limit);
    expectNoFallback(shared);

    // Memory: each process counts alone, so three gateways admit three times the limit.
    const memoryAdmitted = admitted(inMemory);
    for (let g = 0; g < 3; g++) expect(memoryAdmitted.filter((r) => r.target === g)).toHaveLength(limit);
    expect(memoryAdmitted).toHaveLength(3 * limit);
    expect(memoryAdmitted.length).toBe(3 * redisAdmitted.length);
    report({ test: 'exactness', redisAdmitted: redisAdmitted.length, memoryAdmitted: memoryAdmitted.length, sent: 60 });
  });

  it('never admits more than N in any span of W across three gateways, and admits up to the limit', async () => {
    const limit = 5;
    const windowMs = 2_000;
    const floodMs = 5_000;
    const redis = await startRedis();
    servers.push(redis);
    const [all] = await launch(3, {
      by_user: `${limit}/2s`,
      algorithm: 'sliding_window',
      backend: 'redis',
      redis_url: redis.url,
      redis_timeout_ms: 1000,
    });

    // A steady flood, one message every 20 ms round-robin over the gateways, for 5 s (2.5 windows).
    const flood = startFlood(
      all.map((g) => g.url),
      (i) => ({ user_id: 'steady', text: `m${i}` }),
      20,
    );
    await new Promise((r) => setTimeout(r, floodMs));
    const results = await flood.stop();
    expectOnlyLimitAnswers(results);
    expect(results.length).toBeGreaterThanOrEqual(200);
    const admissions = admitted(results);
    const first = Math.min(...results.map((r) => r.sentAt));
    const last = Math.max(...results.map((r) => r.sentAt));
    expect(last - first).toBeGreaterThan(2 * windowMs);

    // Sound upper bound (no jitter assumption): no N+1 admissions decided within less than W.
    const tightest = tightestSpan(admissions, limit);
    expect(tightest, 'N+1 admissions decided within less than one window').toBeGreaterThanOrEqual(windowMs);
    // The limit is used, not just respected: the first 5 at once, 5 more as each window slides past
    // (just after 2 s), 5 more just after 4 s; the 16th could only come after 6 s.
    expect(admissions).toHaveLength(3 * limit);
    // The windows really slid: the first N at once, then groups at least W apart. (The 6th admission
    // was decided at least W after the 1st, so the 6th answer to arrive came at least W after the
    // first request was sent; likewise the 11th, 2W.)
    const sent = admissions.map((r) => r.sentAt - first).sort((a, b) => a - b);
    const answered = admissions.map((r) => r.answeredAt - first).sort((a, b) => a - b);
    expect(sent[limit - 1]!).toBeLessThan(windowMs / 2);
    expect(answered[limit]!).toBeGreaterThanOrEqual(windowMs);
    expect(answered[2 * limit]!).toBeGreaterThanOrEqual(2 * windowMs);
    for (let g = 0; g < 3; g++) expect(admissions.filter((r) => r.target === g).length).toBeGreaterThan(0);
    expectNoFallback(all);
    report({
      test: 'sliding',
      sent: results.length,
      admitted: admissions.length,
      tightestSpanMs: Math.round(tightest),
      maxLatencyMs: Math.round(Math.max(...results.map((r) => r.latencyMs))),
    });
  });

  it('on a Redis Cluster, limits one user exactly across gateways, and every user and tenant on any slot', async () => {
    const cluster = await startRedisCluster();
    clusters.push(cluster);
    const [all] = await launch(3, {
      by_user: '10/10s',
      by_tenant: '15/10s',
      backend: 'redis',
      redis_cluster: cluster.seeds.map((s) => `${s.host}:${s.port}`),
      redis_timeout_ms: 1000,
    });
    const urls = all.map((g) => g.url);

    // One user without a tenant: exactly 10 of 60, spread over the three gateways.
    const solo = await floodInBatches(urls, (i) => ({ user_id: 'solo', text: `s${i}` }), 60, 6);
    expectOnlyLimitAnswers(solo);
    const soloAdmitted = admitted(solo);
    expect(soloAdmitted).toHaveLength(10);
    for (let g = 0; g < 3; g++) expect(soloAdmitted.filter((r) => r.target === g).length).toBeGreaterThan(0);

    // Tenants whose keys land on different slots. Four tenants of one user each (the user rule binds:
    // 10 each of 20) and three tenants of three users each (the tenant rule binds: 15 of 30). All
    // interleaved, round-robin over the gateways, 12 in flight at a time.
    const senders: { tenant: string; user: string; messages: number }[] = [];
    for (let t = 0; t < 4; t++) senders.push({ tenant: `single-${t}`, user: `owner-${t}`, messages: 20 });
    for (let t = 0; t < 3; t++) for (let u = 0; u < 3; u++) senders.push({ tenant: `team-${t}`, user: `member-${t}-${u}`, messages: 10 });
    const queue = senders.flatMap((s) => Array.from({ length: s.messages }, (_, n) => ({ ...s, n })));
    // Interleave the senders: message n of every sender before message n + 1 of any.
    queue.sort((a, b) => a.n - b.n);
    const mixed = await floodInBatches(
      urls,
      (i) => ({ user_id: queue[i]!.user, tenant_id: queue[i]!.tenant, text: `t${i}` }),
      queue.length,
      12,
    );
    expectOnlyLimitAnswers(mixed);
    const span = Math.max(...mixed.map((r) => r.answeredAt)) - Math.min(...mixed.map((r) => r.sentAt));
    expect(span).toBeLessThan(8_000);
    const admittedFor = (pick: (i: number) => boolean) => mixed.filter((r, i) => r.status === 200 && pick(i)).length;
    for (let t = 0; t < 4; t++) expect(admittedFor((i) => queue[i]!.tenant === `single-${t}`), `single-${t}`).toBe(10);
    for (let t = 0; t < 3; t++) {
      expect(admittedFor((i) => queue[i]!.tenant === `team-${t}`), `team-${t}`).toBe(15);
      for (let u = 0; u < 3; u++) expect(admittedFor((i) => queue[i]!.user === `member-${t}-${u}`)).toBeLessThanOrEqual(10);
    }
    // A refusal by the tenant rule says so.
    const teamRefusal = mixed.find((r, i) => r.status === 429 && queue[i]!.tenant.startsWith('team-'));
    expect(teamRefusal?.headers.get('ratelimit-policy')).toBe('"user";q=10;w=10, "tenant";q=15;w=10');

    // The keys really are spread over the cluster's masters, and hold exactly what was admitted.
    const nodeClients = cluster.nodes.map((n) => client(n.port));
    const perNode = await Promise.all(nodeClients.map((c) => c.keys('fg:*')));
    const nodesWithKeys = perNode.filter((keys) => keys.length > 0).length;
    expect(nodesWithKeys).toBeGreaterThanOrEqual(2);
    // 1 solo user key, 4 × (tenant + user), 3 × (tenant + 3 users).
    expect(perNode.flat()).toHaveLength(1 + 4 * 2 + 3 * 4);
    const llen = (key: string) => nodeClients[perNode.findIndex((keys) => keys.includes(key))]!.llen(key);
    expect(await llen(userKey('solo', 10_000))).toBe(10);
    for (let t = 0; t < 3; t++) expect(await llen(`fg:{t:team-${t}}|10000`)).toBe(15);
    for (let t = 0; t < 4; t++) expect(await llen(`fg:{t:single-${t}}u:http:owner-${t}|10000`)).toBe(10);
    expectNoFallback(all);
    report({ test: 'cluster', soloAdmitted: soloAdmitted.length, nodesWithKeys, keysPerNode: perNode.map((k) => k.length) });
  });
});
