import type { Clock } from '../../../src/clock.ts';
import { CircuitBreaker, type BreakerState } from '../breaker.ts';
import type { Decision, RateStore, RuleCheck } from './types.ts';

export type BackendErrorPolicy = 'fallback' | 'open' | 'closed';

export interface ResilientStoreOptions {
  primary: RateStore;
  /** Decides while the primary is failing, under the "fallback" policy. */
  fallback: RateStore;
  policy: BackendErrorPolicy;
  clock: Clock;
  failureThreshold?: number;
  probeIntervalMs?: number;
  /** Called once per breaker transition (never per request). */
  onStateChange?: (state: BreakerState, previous: BreakerState, lastError: unknown) => void;
  /** Called for every failed primary call (for metrics; logging is per transition). */
  onFailure?: (error: unknown) => void;
}

export interface BackendStats {
  breaker: BreakerState;
  /** Decisions the primary made. */
  primary: number;
  /** Decisions made without it (by the failure policy). */
  degraded: number;
  /** Primary calls that failed or timed out. */
  failures: number;
}

const ADMIT: Decision = Object.freeze({ allowed: true, retryAfterMs: 0, results: [] }) as unknown as Decision;

/**
 * A network store behind a circuit breaker. When the primary fails or is slow, the request is decided
 * by the failure policy at once; while the breaker is open, requests do not wait on the primary at
 * all. Decisions go back to the primary by themselves once a probe succeeds.
 */
export class ResilientStore implements RateStore {
  private readonly breaker: CircuitBreaker;
  private readonly counters = { primary: 0, degraded: 0, failures: 0 };
  private lastError: unknown;
  private readonly unavailable: Decision;

  constructor(private readonly options: ResilientStoreOptions) {
    const probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.breaker = new CircuitBreaker({
      failureThreshold: options.failureThreshold ?? 3,
      probeIntervalMs,
      onChange: (state, previous) => options.onStateChange?.(state, previous, this.lastError),
    });
    this.unavailable = { allowed: false, unavailable: true, retryAfterMs: probeIntervalMs, results: [] };
  }

  get size(): number {
    return this.options.fallback.size;
  }

  stats(): BackendStats {
    return { breaker: this.breaker.state, ...this.counters };
  }

  /** Marks the primary as down before any request finds out (e.g. unreachable at startup). */
  markDown(error: unknown): void {
    this.lastError = error;
    this.breaker.trip(this.options.clock.now());
  }

  decide(checks: readonly RuleCheck[], now: number): Decision | Promise<Decision> {
    if (!this.breaker.allow(this.options.clock.now())) return this.degraded(checks, now);
    let pending: Promise<Decision>;
    try {
      pending = Promise.resolve(this.options.primary.decide(checks, now));
    } catch (error) {
      return this.failed(error, checks, now);
    }
    return pending.then(
      (decision) => {
        this.counters.primary++;
        this.breaker.success();
        return decision;
      },
      (error: unknown) => this.failed(error, checks, now),
    );
  }

  private failed(error: unknown, checks: readonly RuleCheck[], now: number): Decision | Promise<Decision> {
    this.counters.failures++;
    this.lastError = error;
    this.options.onFailure?.(error);
    this.breaker.failure(this.options.clock.now());
    return this.degraded(checks, now);
  }

  private degraded(checks: readonly RuleCheck[], now: number): Decision | Promise<Decision> {
    this.counters.degraded++;
    switch (this.options.policy) {
      case 'fallback':
        return this.options.fallback.decide(checks, now);
      case 'open':
        return ADMIT;
      case 'closed':
        return this.unavailable;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.options.primary.close(), this.options.fallback.close()]);
  }
}
