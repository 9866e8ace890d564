import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import {
  gatewayConfig,
  logLines,
  rateLimiterEntry,
  sendTimed,
  startFlood as startFloodUntracked,
  startGateway,
  waitForLog,
  type Flood,
  type RunningGateway,
  type TimedResult,
} from './support/gateway-process.ts';

/**
 * Redis failing under real gateway processes: killed, paused, absent at startup. The Redis timeout is
 * the 50 ms default; every request must still be answered promptly (50 ms plus a generous margin for
 * process and loopback jitter on a busy 2-core machine), decided by the on_backend_error policy, and
 * decisions must go back to Redis by themselves.
 */

const TIMEOUT_MS = 50;
const MAX_LATENCY_MS = TIMEOUT_MS + 500;
const FAILING = 'redis backend failing';
const RECOVERED = 'redis backend answering again';

const gateways: RunningGateway[] = [];
const servers: RedisProcess[] = [];
const clients: Redis[] = [];
const floods: Flood[] = [];

afterEach(async () => {
  // A test that failed mid-flood must not leave its flood running.
  await Promise.allSettled(floods.splice(0).map((f) => f.stop()));
  for (const client of clients.splice(0)) client.disconnect();
  // A paused server would hold up the gateways' teardown: let it run again first.
  for (const server of servers) server.resume();
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** Starts one gateway per config, all at once; every one that started is cleaned up after the test. */
async function launch<T extends Record<string, unknown>[]>(...configs: T): Promise<{ [K in keyof T]: RunningGateway }> {
  const settled = await Promise.allSettled(configs.map((config) => startGateway(gatewayConfig([rateLimiterEntry(config)]))));
  for (const s of settled) if (s.status === 'fulfilled') gateways.push(s.value);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<RunningGateway>).value) as { [K in keyof T]: RunningGateway };
}

async function redis(port?: number): Promise<RedisProcess> {
  const server = await startRedis(port === undefined ? {} : { port });
  servers.push(server);
  return server;
}

function startFlood(...args: Parameters<typeof startFloodUntracked>): Flood {
  const flood = startFloodUntracked(...args);
  floods.push(flood);
  return flood;
}

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
}

/**
 * Without the refusal cache: these tests show the failure policy answering from the moment Redis
 * fails, and a flood already cached would go on being refused for up to a second first (see
 * test/e2e/refusal-cache.test.ts).
 */
function redisConfig(url: string, policy: 'fallback' | 'open' | 'closed'): Record<string, unknown> {
  return { by_user: '5/m', backend: 'redis', redis_url: url, redis_timeout_ms: TIMEOUT_MS, on_backend_error: policy, refusal_cache: false };
}

/** The user's sliding-window list in Redis (prefix "fg", HTTP channel, no tenant). */
/** The user's key for the 5/m rule: keys carry their window. */
const userKey = (user: string) => `fg:{http:${user}}u:|60000`;

/** The scheduler state of a process (R, S, T for stopped, ...), from /proc. */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ', 1)[0]!;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How a TCP connection to the port fails ('' when it succeeds). */
function connectionError(port: number): Promise<string> {
  return new Promise((resolveError) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolveError('');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolveError(error.code ?? error.message));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statuses = (results: readonly TimedResult[]) => [...new Set(results.map((r) => r.status))].sort();
const maxLatency = (results: readonly TimedResult[]) => Math.max(...results.map((r) => r.latencyMs));

function expectPrompt(results: readonly TimedResult[]): void {
  const slow = results.filter((r) => r.latencyMs > MAX_LATENCY_MS).map((r) => `${r.status} after ${Math.round(r.latencyMs)} ms`);
  expect(slow).toEqual([]);
}

/** Exactly one breaker warning, then exactly one recovery line, as an operator would read them. */
function expectOneOutageLogged(gateway: RunningGateway, policy: string): void {
  const failing = logLines(gateway, FAILING);
  const recovered = logLines(gateway, RECOVERED);
  expect(failing).toHaveLength(1);
  expect(recovered).toHaveLength(1);
  expect(failing[0]!.level).toBe(40);
  expect(failing[0]!.on_backend_error).toBe(policy);
  expect(recovered[0]!.level).toBe(30);
  const messages = gateway.logs().map((l) => String(l.msg));
  expect(messages.findIndex((m) => m.startsWith(FAILING))).toBeLessThan(messages.findIndex((m) => m.startsWith(RECOVERED)));
}

function report(figures: Record<string, unknown>): void {
  if (process.env.FLOODGATE_E2E_FIGURES) console.info(JSON.stringify(figures));
}

describe.skipIf(!redisTestsEnabled())('the Redis backend failing under real gateway processes', () => {
  it('Redis killed mid-flood: every request answered promptly, the user still limited locally, Redis used again after restart', async () => {
    const first = await redis();
    const [g1, g2] = await launch(redisConfig(first.url, 'fallback'), redisConfig(first.url, 'fallback'));

    // One user floods gateway 1, a message every 10 ms.
    const flood = startFlood([g1.url], (i) => ({ user_id: 'flooder', text: `m${i}` }), 10);
    await until(() => flood.results.filter((r) => r.status === 429).length >= 5, 'the flood to reach the limit on redis');
    // Redis is deciding: it holds the user's 5 admissions.
    const before = client(first.port);
    expect(await before.llen(userKey('flooder'))).toBe(5);
    before.disconnect();

    await first.kill();
    const killedAt = performance.now();
    expect(first.process.signalCode).toBe('SIGKILL');
    expect(await connectionError(first.port)).toBe('ECONNREFUSED');
    await waitForLog(g1, FAILING, 5_000);
    // The outage lasts a while: several breaker probes fail, quietly.
    await sleep(1_500);

    const restartAt = performance.now();
    const second = await redis(first.port);
    expect(second.process.pid).not.toBe(first.process.pid);
    await waitForLog(g1, RECOVERED, 5_000);
    const recoveredAt = performance.now();
    await sleep(500);
    const results = await flood.stop();

    // Every request got an answer, quickly, and only ever a limit decision.
    expectPrompt(results);
    expect(statuses(results)).toEqual([200, 429]);
    // During the outage the user was still limited, by gateway 1's own memory: at most 5 more.
    const outage = results.filter((r) => r.sentAt > killedAt && r.answeredAt < restartAt);
    expect(outage.length).toBeGreaterThan(50);
    expect(outage.filter((r) => r.status === 200).length).toBeLessThanOrEqual(5);
    // Altogether: 5 decided by the first server, 5 by the local fallback, 5 by the new server.
    expect(results.filter((r) => r.status === 200)).toHaveLength(15);
    // After recovery the decisions are back on Redis: the new server holds the user's admissions...
    const fresh = client(second.port);
    expect(await fresh.llen(userKey('flooder'))).toBe(5);
    expect(results.filter((r) => r.sentAt > recoveredAt).length).toBeGreaterThan(20);
    expectOneOutageLogged(g1, 'fallback');

    // The limit is shared between the two gateways again (gateway 2 reconnected by itself).
    await until(async () => String(await fresh.client('LIST')).trim().split('\n').length >= 3, 'both gateways to reconnect');
    const shared: TimedResult[] = [];
    for (let i = 0; i < 10; i++) shared.push(await sendTimed([g1, g2][i % 2]!.url, { user_id: 'sharer', text: `s${i}` }, i % 2));
    expect(shared.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
    expect(await fresh.llen(userKey('sharer'))).toBe(5);
    // Gateway 2 had no traffic during the outage, so it never fell back.
    expect(logLines(g2, FAILING)).toEqual([]);
    report({ test: 'kill', requests: results.length, outageRequests: outage.length, maxLatencyMs: Math.round(maxLatency(results)) });
  });

  it('Redis paused mid-flood: answers stay prompt; closed refuses with 503, open admits; both recover on SIGCONT', async () => {
    const server = await redis();
    const [closed, open] = await launch(redisConfig(server.url, 'closed'), redisConfig(server.url, 'open'));
    // The user of the open gateway is over the limit before the pause.
    for (let i = 0; i < 5; i++) expect((await sendTimed(open.url, { user_id: 'over', text: 'hi' })).status).toBe(200);

    // Both gateways flooded: a new user each time on the closed one (always under the limit), the
    // over-limit user on the open one.
    const flood = startFlood(
      [closed.url, open.url],
      (i) => (i % 2 === 0 ? { user_id: `fresh-${i}`, text: 'hi' } : { user_id: 'over', text: 'hi' }),
      10,
    );
    await until(() => flood.results.length >= 40, 'the flood to start');
    server.pause();
    await until(() => processState(server.process.pid!) === 'T', 'redis-server to stop');
    const pausedAt = performance.now();
    await Promise.all([waitForLog(closed, FAILING, 5_000), waitForLog(open, FAILING, 5_000)]);
    await sleep(1_500);
    expect(processState(server.process.pid!)).toBe('T');

    const resumedAt = performance.now();
    server.resume();
    await Promise.all([waitForLog(closed, RECOVERED, 5_000), waitForLog(open, RECOVERED, 5_000)]);
    const recoveredAt = performance.now();
    await sleep(300);
    const results = await flood.stop();

    expectPrompt(results);
    const onClosed = results.filter((r) => r.target === 0);
    const onOpen = results.filter((r) => r.target === 1);
    const healthy = (r: TimedResult) => r.answeredAt < pausedAt;
    const paused = (r: TimedResult) => r.sentAt > pausedAt && r.answeredAt < resumedAt;
    const recovered = (r: TimedResult) => r.sentAt > recoveredAt;

    // Before: Redis decides. Fresh users are admitted; the over-limit user is refused.
    expect(statuses(onClosed.filter(healthy))).toEqual([200]);
    expect(statuses(onOpen.filter(healthy))).toEqual([429]);

    // Paused, policy closed: every message refused as unavailable, with a reply and a retry time.
    const closedWhilePaused = onClosed.filter(paused);
    expect(closedWhilePaused.length).toBeGreaterThan(50);
    expect(statuses(closedWhilePaused)).toEqual([503]);
    for (const r of closedWhilePaused) {
      expect(r.body.error).toBe('limiter_unavailable');
      expect(r.body.reply).toMatch(/try again/i);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Paused, policy open: every message admitted, even the over-limit user's.
    const openWhilePaused = onOpen.filter(paused);
    expect(openWhilePaused.length).toBeGreaterThan(50);
    expect(statuses(openWhilePaused)).toEqual([200]);

    // After SIGCONT: Redis decides again, with the state it kept through the pause.
    expect(statuses(onClosed.filter(recovered))).toEqual([200]);
    expect(onClosed.filter(recovered).every((r) => r.headers.get('x-ratelimit-remaining') === '4')).toBe(true);
    expect(statuses(onOpen.filter(recovered))).toEqual([429]);
    expect(await client(server.port).llen(userKey('over'))).toBe(5);
    expectOneOutageLogged(closed, 'closed');
    expectOneOutageLogged(open, 'open');
    report({
      test: 'pause',
      requests: results.length,
      whilePaused: closedWhilePaused.length + openWhilePaused.length,
      maxLatencyMs: Math.round(maxLatency(results)),
      maxLatencyWhilePausedMs: Math.round(maxLatency([...closedWhilePaused, ...openWhilePaused])),
    });
  });

  it.each(['closed', 'fallback'] as const)(
    'a gateway started while Redis is down answers by policy %s and moves to Redis once it appears',
    async (policy) => {
      const port = await freePort();
      expect(await connectionError(port)).toBe('ECONNREFUSED');

      const [gateway] = await launch(redisConfig(`redis://127.0.0.1:${port}`, policy));
      expect(logLines(gateway, FAILING)).toHaveLength(1);
      expect(logLines(gateway, 'rate limiter ready')).toHaveLength(1);

      const down: TimedResult[] = [];
      for (let i = 0; i < 7; i++) down.push(await sendTimed(gateway.url, { user_id: 'early', text: `e${i}` }));
      expectPrompt(down);
      if (policy === 'closed') {
        expect(statuses(down)).toEqual([503]);
        expect(down.every((r) => r.body.error === 'limiter_unavailable')).toBe(true);
      } else {
        // Limited all the same, in this process's memory.
        expect(down.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429]);
      }

      const server = await redis(port);
      await until(async () => {
        const r = await sendTimed(gateway.url, { user_id: 'probe', text: 'hi' });
        down.push(r);
        return logLines(gateway, RECOVERED).length > 0;
      }, 'the gateway to find redis');
      expectPrompt(down);

      // Redis decides now: the early user starts afresh there, and Redis holds the admissions.
      const later: number[] = [];
      for (let i = 0; i < 6; i++) later.push((await sendTimed(gateway.url, { user_id: 'early', text: `l${i}` })).status);
      expect(later).toEqual([200, 200, 200, 200, 200, 429]);
      expect(await client(server.port).llen(userKey('early'))).toBe(5);
      expectOneOutageLogged(gateway, policy);
    },
  );
});
