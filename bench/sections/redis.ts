/**
 * 2. Redis decisions/s against a real local redis-server, at several concurrencies (that many
 * decisions in flight, each awaited, then the next). Every contender has its own client made by
 * the plugin's createRedisClient (auto-pipelining, fail-fast; the command timeout raised to 1 s so
 * a loaded machine's stalls are counted as slow, not failed). Each run starts from an empty
 * database; 10,000 users, 30/m, so nearly every decision is an admission. Contenders:
 *  - batchedFloor: the floor Floodgate's store is held to. The same INCR and (on a new key) PEXPIRE per
 *    request, batched as the store batches: the requests asked in one tick go as one script call over
 *    all their keys (queued, flushed on process.nextTick, at most 512 per call);
 *  - unbatchedFloor: the same work as a one-key Lua script, one EVALSHA per request (auto-pipelined,
 *    but one command per request: the store's batching beats it, so it is no floor for the store);
 *  - RateLimiterRedis consume() (its own Lua script, a fixed-window counter);
 *  - Floodgate's RedisStore.decide() for each algorithm (one EVALSHA deciding on Redis time).
 */
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createRedisClient } from '../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../plugins/rate-limiter/store/redis.ts';
import { ALGORITHM_NAMES, USER_RATE, buildChecks, type AlgorithmName } from '../lib/fixtures.ts';
import { interleave, median, pairedRatio, percentile, perSecond, rateFigure, type Plan, type RateFigure, type Throughput } from '../lib/measure.ts';

export interface RedisParams extends Plan {
  url: string;
  users: number;
  durationMs: number;
  concurrency: number[];
  /** The concurrency whose per-decision latency is reported. */
  latencyAt: number;
}

const FLOOR_LUA = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

/** FLOOR_LUA for every key of a batch, in one call: each request's count, in order. */
const BATCHED_FLOOR_LUA = `local ttl = ARGV[1]
local out = {}
for i = 1, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], ttl) end
  out[i] = n
end
return out`;

/** Most requests one call of the batched floor takes, as RedisStore's MAX_BATCH. */
const FLOOR_MAX_BATCH = 512;

type BatchCommand = (...args: (string | number)[]) => Promise<number[]>;

interface Queued {
  key: string;
  resolve(count: number): void;
  reject(error: unknown): void;
}

/**
 * The batched floor: requests asked in the same tick are queued and flushed on process.nextTick as
 * one script call whose keys are theirs (the key count first, as RedisStore's batch command), the
 * way RedisStore.decide() batches on a single server; nothing else is done for a request.
 */
class BatchedFloor {
  private queue: Queued[] = [];

  constructor(
    private readonly command: BatchCommand,
    private readonly ttlMs: number,
  ) {}

  decide(key: string): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) process.nextTick(this.flush);
      this.queue.push({ key, resolve, reject });
    });
  }

  private readonly flush = (): void => {
    const queue = this.queue;
    this.queue = [];
    for (let from = 0; from < queue.length; from += FLOOR_MAX_BATCH) this.send(queue.slice(from, from + FLOOR_MAX_BATCH));
  };

  private send(batch: Queued[]): void {
    const args: (string | number)[] = [batch.length];
    for (const { key } of batch) args.push(key);
    args.push(this.ttlMs);
    let reply: Promise<number[]>;
    try {
      reply = this.command(...args);
    } catch (error) {
      for (const { reject } of batch) reject(error);
      return;
    }
    reply.then(
      (counts) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(counts[i]!);
      },
      (error: unknown) => {
        for (const { reject } of batch) reject(error);
      },
    );
  }
}

interface Run extends Throughput {
  errors: number;
  p50: number;
  p99: number;
}

export interface Latency {
  p50Ms: number;
  p99Ms: number;
}

export interface ContenderFigure {
  name: string;
  rate: RateFigure;
  /** Median over runs of each run's p50/p99, when this concurrency records latency. */
  latency?: Latency;
  errors: number;
  /** Per-run ratios' medians: against RateLimiterRedis, the batched floor and the unbatched one. */
  vsRlf: number;
  vsBatchedFloor: number;
  vsUnbatchedFloor: number;
}

export interface ConcurrencyResult {
  concurrency: number;
  contenders: ContenderFigure[];
}

export interface RedisResult {
  users: number;
  durationMs: number;
  server: string;
  byConcurrency: ConcurrencyResult[];
}

type Decide = (user: number) => Promise<unknown>;

export async function runRedis(params: RedisParams, log: (line: string) => void): Promise<RedisResult> {
  const clients: Redis[] = [];
  const client = async () => {
    const c = createRedisClient({ url: params.url, timeoutMs: 1_000 }) as Redis;
    await c.connect();
    clients.push(c);
    return c;
  };
  try {
    const admin = await client();
    const server = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? 'unknown';
    const keys = buildChecks('sliding_window', 1, params.users).map((c) => c[0]!.key);

    const ttl = USER_RATE.seconds * 1000;
    // Defined before any call, as RedisStore does (ioredis's auto-pipeline copies a client's scripts
    // when it starts a pipeline).
    const batchedClient = await client();
    batchedClient.defineCommand('benchFloorBatch', { lua: BATCHED_FLOOR_LUA });
    const batched = new BatchedFloor((batchedClient as unknown as Record<string, BatchCommand>).benchFloorBatch!.bind(batchedClient), ttl);
    const floorClient = await client();
    floorClient.defineCommand('benchFloor', { numberOfKeys: 1, lua: FLOOR_LUA });
    const floorCommand = (floorClient as unknown as Record<string, (key: string, ttl: number) => Promise<number>>).benchFloor!.bind(floorClient);
    const deciders: { name: string; decide: Decide }[] = [
      { name: 'batchedFloor', decide: (u) => batched.decide(`bb:${keys[u]}`) },
      { name: 'unbatchedFloor', decide: (u) => floorCommand(`bf:${keys[u]}`, ttl) },
    ];

    const rlf = new RateLimiterRedis({ storeClient: await client(), points: USER_RATE.points, duration: USER_RATE.seconds, keyPrefix: 'rlf' });
    deciders.push({ name: 'rlf', decide: (u) => rlf.consume(keys[u]!) });

    for (const algorithm of ALGORITHM_NAMES) {
      const checks = buildChecks(algorithm, 1, params.users);
      const store = new RedisStore({ client: await client(), algorithm, prefix: `fg-${algorithm}` });
      deciders.push({ name: algorithm, decide: (u) => store.decide(checks[u]!, Date.now()) });
    }

    const byConcurrency: ConcurrencyResult[] = [];
    for (const concurrency of params.concurrency) {
      log(`redis, concurrency ${concurrency}`);
      const withLatency = concurrency === params.latencyAt;
      const samples = await interleave<Run>(
        deciders.map(({ name, decide }) => ({ name, run: () => drive(decide, concurrency, params.durationMs, params.users, withLatency) })),
        params,
        { beforeEach: async () => void (await admin.flushdb()) },
      );
      const rates = (name: string) => samples[name]!.map(perSecond);
      byConcurrency.push({
        concurrency,
        contenders: deciders.map(({ name }) => ({
          name,
          rate: rateFigure(samples[name]!),
          ...(withLatency ? { latency: { p50Ms: median(samples[name]!.map((s) => s.p50)), p99Ms: median(samples[name]!.map((s) => s.p99)) } } : {}),
          errors: samples[name]!.reduce((sum, s) => sum + s.errors, 0),
          vsRlf: pairedRatio(rates(name), rates('rlf')),
          vsBatchedFloor: pairedRatio(rates(name), rates('batchedFloor')),
          vsUnbatchedFloor: pairedRatio(rates(name), rates('unbatchedFloor')),
        })),
      });
    }
    return { users: params.users, durationMs: params.durationMs, server, byConcurrency };
  } finally {
    for (const c of clients) c.disconnect();
  }
}

/**
 * `concurrency` loops, each awaiting one decision then starting the next, for `durationMs`. A refusal
 * (RLF rejects with its result) is a decision like any other; only errors are counted apart.
 */
async function drive(decide: Decide, concurrency: number, durationMs: number, users: number, withLatency: boolean): Promise<Run> {
  let next = 0;
  let errors = 0;
  let done = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + durationMs;
  const loop = async () => {
    while (performance.now() < deadline) {
      const user = next++ % users;
      const begun = withLatency ? performance.now() : 0;
      try {
        await decide(user);
      } catch (error) {
        if (error instanceof Error) errors++;
      }
      if (withLatency) latencies.push(performance.now() - begun);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { ops: done - errors, seconds, errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}
