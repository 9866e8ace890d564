import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackendErrorPolicy } from '../../../plugins/rate-limiter/store/resilient.ts';
import { ResilientStore } from '../../../plugins/rate-limiter/store/resilient.ts';
import type { HookResult } from '../../../src/hooks/schemas.ts';
import { freePort, redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { eventually, inspector, sleep, startPlugin, within, type RunningPlugin } from './redis-helpers.ts';

/**
 * Redis failing under the real plugin (its setup, client, breaker and limiter, in this process): killed
 * or paused mid-flood, or absent at startup. Every decision must still come back within the Redis
 * timeout (50 ms, the default) plus a margin, be decided by on_backend_error, be logged once per
 * breaker transition, and go back to Redis by itself once Redis answers.
 */

const enabled = redisTestsEnabled();

const REDIS_TIMEOUT_MS = 50;
const MARGIN_MS = 250;
const LIMIT = 5;
const FAILING = 'redis backend failing';
const RECOVERED = 'redis backend answering again; decisions are back on redis';

type Phase = 'before' | 'outage' | 'after';

interface Outcome {
  phase: Phase | 'switching';
  user: string;
  latencyMs: number;
  result: HookResult;
}

/** Requests in a steady stream (a batch of 5 every 10 ms), each one timed. */
class Flood {
  readonly outcomes: Outcome[] = [];
  /** The phase a request belongs to is the one current when it was sent. */
  phase: Phase | 'switching' = 'before';
  private running = true;
  private readonly pending = new Set<Promise<void>>();
  private readonly loop: Promise<void>;
  sent = 0;

  constructor(
    private readonly plugin: RunningPlugin,
    /** 4 users per phase, so each one sends far more than LIMIT. */
    private readonly usersPerPhase = 4,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      for (let i = 0; i < 5; i++) {
        const request = this.one();
        this.pending.add(request);
        void request.finally(() => this.pending.delete(request));
      }
      await sleep(10);
    }
  }

  private async one(): Promise<void> {
    const phase = this.phase;
    const user = `${phase}-${this.sent++ % this.usersPerPhase}`;
    const started = performance.now();
    const result = await this.plugin.prompt(user);
    const latencyMs = performance.now() - started;
    this.outcomes.push({ phase, user, latencyMs, result });
  }

  in(phase: Phase): Outcome[] {
    return this.outcomes.filter((o) => o.phase === phase);
  }

  get maxLatencyMs(): number {
    return Math.max(...this.outcomes.map((o) => o.latencyMs));
  }

  /** The slowest decision of each phase, for the log. */
  slowest(): string {
    const phases = ['before', 'switching', 'outage', 'after'] as const;
    return phases.map((p) => `${p} ${Math.max(0, ...this.outcomes.filter((o) => o.phase === p).map((o) => o.latencyMs)).toFixed(1)}`).join(', ');
  }

  /** Stops sending and waits for every request sent to be answered (none may hang). */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await within(Promise.all([...this.pending]), 2_000, 'the last requests of the flood');
    expect(this.outcomes).toHaveLength(this.sent);
  }
}

/** Finds the plugin's ResilientStore (built inside setup) the first time it decides. */
function watchStores(): ResilientStore[] {
  const stores: ResilientStore[] = [];
  const decide = ResilientStore.prototype.decide;
  vi.spyOn(ResilientStore.prototype, 'decide').mockImplementation(function (this: ResilientStore, checks, now) {
    if (!stores.includes(this)) stores.push(this);
    return decide.call(this, checks, now);
  });
  return stores;
}

const servers: RedisProcess[] = [];
const plugins: RunningPlugin[] = [];
const inspectors: Redis[] = [];
const floods: Flood[] = [];

async function server(port?: number): Promise<RedisProcess> {
  const started = await startRedis(port === undefined ? {} : { port });
  servers.push(started);
  return started;
}

async function plugin(redisUrl: string, policy: BackendErrorPolicy): Promise<RunningPlugin> {
  const running = await startPlugin({
    backend: 'redis',
    redis_url: redisUrl,
    redis_timeout_ms: REDIS_TIMEOUT_MS,
    on_backend_error: policy,
    by_user: `${LIMIT}/m`,
    // These tests count the decisions Redis made; the refusal cache would answer part of the flood
    // itself (refusal-cache.test.ts is about that).
    refusal_cache: false,
  });
  plugins.push(running);
  return running;
}

function look(url: string): Redis {
  const client = inspector(url);
  inspectors.push(client);
  return client;
}

function flood(running: RunningPlugin): Flood {
  const f = new Flood(running);
  floods.push(f);
  return f;
}

afterEach(async () => {
  await Promise.all(floods.splice(0).map((f) => f.stop()));
  // A paused server would never exit on SIGTERM's turn: let it run first (stop() also sends SIGCONT).
  for (const s of servers) s.resume();
  await Promise.all(plugins.splice(0).map((p) => p.teardown()));
  for (const c of inspectors.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  vi.restoreAllMocks();
});

const failingLogs = (p: RunningPlugin) => p.log.at('warn').filter((e) => String(e.msg).startsWith(FAILING));
const recoveredLogs = (p: RunningPlugin) => p.log.at('info').filter((e) => e.msg === RECOVERED);

/** What the policy must have done with every request sent during the outage. */
function expectPolicy(policy: BackendErrorPolicy, outage: Outcome[]): void {
  expect(outage.every((o) => o.phase === 'outage')).toBe(true);
  expect(outage.length).toBeGreaterThan(100);
  if (policy === 'open') {
    for (const o of outage) expect(o.result).toEqual({ continue: true });
  } else if (policy === 'closed') {
    for (const o of outage) {
      expect(o.result.continue).toBe(false);
      if (!o.result.continue) expect(o.result.violation).toMatchObject({ code: 'limiter_unavailable', httpStatus: 503 });
    }
  } else {
    // The local limit holds: each user gets exactly LIMIT, then friendly 429s with headers.
    const byUser = new Map<string, Outcome[]>();
    for (const o of outage) byUser.set(o.user, [...(byUser.get(o.user) ?? []), o]);
    expect(byUser.size).toBe(4);
    for (const [user, outcomes] of byUser) {
      expect(outcomes.length, user).toBeGreaterThan(LIMIT);
      const admitted = outcomes.filter((o) => o.result.continue);
      expect(admitted, user).toHaveLength(LIMIT);
      for (const o of outcomes) {
        if (o.result.continue) expect(o.result.headers?.['X-RateLimit-Limit']).toBe(String(LIMIT));
        else expect(o.result.violation).toMatchObject({ code: 'rate_limited', httpStatus: 429 });
      }
    }
  }
}

/** Back on Redis: the breaker closed by itself, new users' keys are in Redis, the primary decides again. */
async function expectRecovery(running: RunningPlugin, store: ResilientStore, f: Flood, redis: Redis, primaryBefore: number) {
  await eventually(() => store.stats().breaker === 'closed' && f.in('after').length > 20, 5_000, 'decisions back on Redis');
  const sentAfterClose = f.outcomes.length;
  await eventually(() => f.outcomes.length > sentAfterClose + 20, 2_000, 'more requests after recovery');
  const keys = await redis.keys('fg:{http:after-*');
  expect(keys.length).toBeGreaterThan(0);
  expect(store.stats().primary).toBeGreaterThan(primaryBefore + 20);
  expect(recoveredLogs(running)).toHaveLength(1);
}

describe.skipIf(!enabled)('Redis killed (SIGKILL) mid-flood', () => {
  it.each(['fallback', 'closed', 'open'] as const)(
    'on_backend_error=%s: every decision on time, by the policy, logged once; back on Redis after a restart',
    async (policy) => {
      const stores = watchStores();
      const redisServer = await server();
      const running = await plugin(redisServer.url, policy);
      const redis = look(redisServer.url);

      const f = flood(running);
      await eventually(() => f.in('before').length >= 40, 2_000, 'requests before the kill');
      const [store] = stores;
      expect(store).toBeDefined();
      const before = store!.stats();
      expect(before).toMatchObject({ breaker: 'closed', degraded: 0, failures: 0 });
      expect(before.primary).toBeGreaterThanOrEqual(40);
      expect(await redis.exists('fg:{http:before-0}u:|60000')).toBe(1);

      f.phase = 'switching';
      await redisServer.kill();
      f.phase = 'outage';
      // Long enough for the breaker to open and probe (and fail) at least once.
      await sleep(1_300);
      expect(store!.stats().breaker).not.toBe('closed');
      const down = store!.stats();
      expect(down.failures).toBeGreaterThanOrEqual(3);
      expect(down.degraded).toBeGreaterThanOrEqual(f.in('outage').length);

      f.phase = 'switching';
      await server(redisServer.port);
      f.phase = 'after';
      await expectRecovery(running, store!, f, redis, down.primary);
      await f.stop();

      expectPolicy(policy, f.in('outage'));
      expect(f.maxLatencyMs).toBeLessThan(REDIS_TIMEOUT_MS + MARGIN_MS);
      // One warning for the whole outage (hundreds of requests, several failed probes), no faults.
      expect(failingLogs(running)).toHaveLength(1);
      expect(failingLogs(running)[0]).toMatchObject({ on_backend_error: policy });
      expect(running.log.at('error')).toEqual([]);
      console.info(
        `[chaos] kill/${policy}: ${f.outcomes.length} decisions, ${f.in('outage').length} during the outage, ` +
          `max latency ${f.maxLatencyMs.toFixed(1)} ms (${f.slowest()}), stats ${JSON.stringify(store!.stats())}`,
      );
    },
  );
});

describe.skipIf(!enabled)('Redis paused (SIGSTOP) mid-flood', () => {
  it.each(['fallback', 'closed', 'open'] as const)(
    'on_backend_error=%s: every decision on time, by the policy; SIGCONT brings decisions back to Redis',
    async (policy) => {
      const stores = watchStores();
      const redisServer = await server();
      const running = await plugin(redisServer.url, policy);
      const redis = look(redisServer.url);

      const f = flood(running);
      await eventually(() => f.in('before').length >= 40, 2_000, 'requests before the pause');
      const store = stores[0]!;
      expect(store.stats()).toMatchObject({ breaker: 'closed', failures: 0 });

      f.phase = 'switching';
      process.kill(redisServer.process.pid!, 'SIGSTOP');
      f.phase = 'outage';
      await sleep(1_300);
      const down = store.stats();
      expect(down.breaker).not.toBe('closed');
      // Timeouts, not refused connections: the server holds the connection and never answers.
      expect(down.failures).toBeGreaterThanOrEqual(3);

      f.phase = 'switching';
      process.kill(redisServer.process.pid!, 'SIGCONT');
      f.phase = 'after';
      await expectRecovery(running, store, f, redis, down.primary);
      await f.stop();

      expectPolicy(policy, f.in('outage'));
      expect(f.maxLatencyMs).toBeLessThan(REDIS_TIMEOUT_MS + MARGIN_MS);
      expect(failingLogs(running)).toHaveLength(1);
      expect(String(failingLogs(running)[0]!.err_message)).toMatch(/timed? ?out/i);
      expect(running.log.at('error')).toEqual([]);
      console.info(
        `[chaos] pause/${policy}: ${f.outcomes.length} decisions, ${f.in('outage').length} during the pause, ` +
          `max latency ${f.maxLatencyMs.toFixed(1)} ms (${f.slowest()}), stats ${JSON.stringify(store.stats())}`,
      );
    },
  );
});

describe.skipIf(!enabled)('Redis down at startup', () => {
  it.each(['closed', 'fallback'] as const)(
    'on_backend_error=%s: setup completes, requests are decided by the policy, and move to Redis once it appears',
    async (policy) => {
      const stores = watchStores();
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      const setupStarted = performance.now();
      const running = await plugin(url, policy);
      const setupMs = performance.now() - setupStarted;
      // Nothing listens there: the connection is refused at once, setup does not wait for it.
      expect(setupMs).toBeLessThan(1_000);
      expect(failingLogs(running)).toHaveLength(1);
      expect(running.log.at('info').map((e) => e.msg)).toContain('rate limiter ready');

      const f = flood(running);
      f.phase = 'outage';
      await sleep(1_300);
      const store = stores[0]!;
      expect(store.stats()).toMatchObject({ primary: 0 });
      expect(store.stats().breaker).not.toBe('closed');

      f.phase = 'switching';
      const late = await server(port);
      f.phase = 'after';
      await expectRecovery(running, store, f, look(late.url), 0);
      await f.stop();

      expectPolicy(policy, f.in('outage'));
      expect(f.maxLatencyMs).toBeLessThan(REDIS_TIMEOUT_MS + MARGIN_MS);
      // After recovery, requests carry Redis-decided headers.
      const after = f.in('after').slice(-10);
      for (const o of after) if (o.result.continue) expect(o.result.headers?.['X-RateLimit-Limit']).toBe(String(LIMIT));
      expect(failingLogs(running)).toHaveLength(1);
      console.info(`[chaos] startup/${policy}: setup ${setupMs.toFixed(1)} ms, max latency ${f.maxLatencyMs.toFixed(1)} ms`);
    },
  );
});
