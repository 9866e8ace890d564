import { errorMessage, type Clock, type Logger } from '../../../src/plugin-sdk.ts';
import { CircuitBreaker, type BreakerState } from '../breaker.ts';
import { RedisConcurrencyGate } from '../concurrency/redis.ts';
import type { SlotRequest, SlotResult } from '../concurrency/types.ts';
import type { KeyScope } from '../keys.ts';
import type { RateLimiterOptions } from '../options.ts';
import { ResilientGate } from '../resilient-gate.ts';
import { blocksOf } from '../blocks/memory.ts';
import type { BlockStanding } from '../blocks/types.ts';
import { forgetRedis, peekBlocksRedis, peekRedis, redisNow } from '../store/redis-admin.ts';
import { CONNECT_TIMEOUT_MS, connectWithin, createRedisClient } from '../store/redis-client.ts';
import { RedisStore, type RedisClient } from '../store/redis.ts';
import { ResilientStore } from '../store/resilient.ts';
import type { Decision, RuleCheck, RuleResult } from '../store/types.ts';
import { MemoryBackend } from './memory.ts';
import type { Backend } from './types.ts';

/** What the backend reports as it goes (metrics, events); never called per request unless Redis fails. */
export interface RedisBackendEvents {
  failed(error: unknown): void;
  breakerChanged(state: BreakerState, previous: BreakerState): void;
}

/** Consecutive failures that open the breaker, and how often a probe then goes through. */
const FAILURE_THRESHOLD = 3;
const PROBE_INTERVAL_MS = 1_000;

/**
 * Shared state on Redis: one client and one circuit breaker for the rate store, the concurrency
 * slots and the operator's reads. While Redis fails, on_backend_error decides for all of them:
 * the same decisions in this process's memory (fallback), admit (open) or refuse as unavailable
 * (closed). Every Redis answer arrives as a promise, so every step here continues in one.
 */
export class RedisBackend implements Backend {
  /** The one client (the refusal cache reads state and publishes through it too). */
  readonly client: RedisClient;
  private readonly breakerState: CircuitBreaker;
  private readonly local: MemoryBackend;
  private readonly store: ResilientStore;
  private readonly gate: ResilientGate;
  private lastError: unknown;

  private constructor(
    private readonly options: RateLimiterOptions,
    private readonly deps: {
      clock: Clock;
      logger: Logger;
      events?: RedisBackendEvents;
      /** 'caller': decide and read on `clock` instead of the server's TIME (tests with a manual clock). */
      timeSource?: 'redis' | 'caller';
    },
  ) {
    const { clock } = deps;
    this.client = createRedisClient({ url: options.redis_url, cluster: options.redis_cluster, timeoutMs: options.redis_timeout_ms });
    this.local = new MemoryBackend(options, clock);
    this.breakerState = new CircuitBreaker({
      failureThreshold: FAILURE_THRESHOLD,
      probeIntervalMs: PROBE_INTERVAL_MS,
      onChange: (state, previous) => this.breakerChanged(state, previous),
    });
    const failed = (error: unknown) => {
      this.lastError = error;
      deps.events?.failed(error);
    };
    this.store = new ResilientStore({
      primary: new RedisStore({ client: this.client, algorithm: options.algorithm, prefix: options.redis_key_prefix, timeSource: deps.timeSource }),
      fallback: this.local.store,
      policy: options.on_backend_error,
      clock,
      breaker: this.breakerState,
      probeIntervalMs: PROBE_INTERVAL_MS,
      onFailure: failed,
    });
    this.gate = new ResilientGate({
      primary: new RedisConcurrencyGate({ client: this.client, prefix: options.redis_key_prefix, leaseMs: options.concurrency_lease_ms }),
      fallback: this.local.gate,
      policy: options.on_backend_error,
      breaker: this.breakerState,
      clock,
      onFailure: failed,
    });
  }

  /** Connects; an unreachable Redis does not stop the start: the breaker opens and probes until it answers. */
  static async open(options: RateLimiterOptions, deps: RedisBackend['deps']): Promise<RedisBackend> {
    const backend = new RedisBackend(options, deps);
    try {
      await connectWithin(backend.client, CONNECT_TIMEOUT_MS);
    } catch (error) {
      backend.lastError = error;
      backend.store.markDown(error);
    }
    return backend;
  }

  get keys(): number {
    return this.local.keys;
  }

  get blocks(): number {
    return this.local.blocks;
  }

  get breaker(): BreakerState {
    return this.breakerState.state;
  }

  decide<T>(checks: readonly RuleCheck[], now: number, next: (decision: Decision) => T | Promise<T>): Promise<T> {
    return Promise.resolve(this.store.decide(checks, now)).then(next);
  }

  acquire<T>(request: SlotRequest, next: (slot: SlotResult) => T | Promise<T>): Promise<T> {
    return this.gate.acquire(request).then(next);
  }

  /** Resolves once Redis has the adjustment (or it failed, which is counted); never rejects. */
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): Promise<void> {
    return Promise.resolve(this.store.adjust(decision, checks, deltas, now)).catch((error: unknown) => this.deps.events?.failed(error));
  }

  /** Read from Redis while it answers; from this process's memory (what fallback decides by) while it does not. */
  async peek(checks: readonly RuleCheck[]): Promise<{ results: RuleResult[]; local: boolean; blocks?: BlockStanding[] }> {
    if (this.breakerState.state === 'closed') {
      try {
        const { algorithm, redis_key_prefix: prefix } = this.options;
        const now = this.deps.timeSource === 'caller' ? this.deps.clock.now() : await redisNow(this.client);
        const blocks = blocksOf(checks);
        const [results, standings] = await Promise.all([
          peekRedis(this.client, algorithm, prefix, checks, now),
          blocks.length === 0 ? undefined : peekBlocksRedis(this.client, prefix, blocks, now),
        ]);
        return standings === undefined ? { results, local: false } : { results, local: false, blocks: standings };
      } catch (error) {
        this.deps.events?.failed(error);
      }
    }
    return { ...(await this.local.peek(checks)), local: true };
  }

  inUse(keys: readonly string[]): Promise<number[]> {
    return this.gate.inUse(keys).catch(() => this.local.inUse(keys));
  }

  async forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number> {
    // Redis first: a reset that cannot reach it fails as a whole, and the operator tries again.
    const shared = await forgetRedis(this.client, this.options.redis_key_prefix, scope.tag, owns);
    // The gate forgets its Redis slots and this process's fallback slots.
    return shared + this.local.store.forget(owns) + (await this.gate.forget(scope.tag, owns));
  }

  async close(): Promise<void> {
    await Promise.all([this.store.close(), this.gate.close()]);
    this.client.disconnect();
  }

  private breakerChanged(state: BreakerState, previous: BreakerState): void {
    this.deps.events?.breakerChanged(state, previous);
    const policy = this.options.on_backend_error;
    if (state === 'open' && previous === 'closed') {
      this.deps.logger.warn(
        { on_backend_error: policy, err_message: errorMessage(this.lastError) },
        `redis backend failing; deciding by on_backend_error=${policy} until it answers`,
      );
    } else if (state === 'closed') {
      this.deps.logger.info('redis backend answering again; decisions are back on redis');
    }
  }
}
