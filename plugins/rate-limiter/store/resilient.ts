import { type Clock } from '../../../src/plugin-sdk.ts';
import { CircuitBreaker, type BreakerState } from '../breaker.ts';
import type { MemoryStore } from './memory.ts';
import type { Decision, RateStore, RuleCheck } from './types.ts';

export type BackendErrorPolicy = 'fallback' | 'open' | 'closed';

export interface ResilientStoreOptions {
  primary: RateStore;
  /** Decides while the primary is failing, under the "fallback" policy. */
  fallback: MemoryStore;
  policy: BackendErrorPolicy;
  clock: Clock;
  /** The breaker this store shares with everything else that talks to the same backend; made here when absent. */
  breaker?: CircuitBreaker;
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

/** A decision's charge as the resilient store keeps it: which of its stores charged, and its own charge. */
class StoreCharge {
  constructor(
    readonly store: RateStore,
    readonly charge: unknown,
  ) {}
}

/** Marks the decision as `store`'s, so that adjust() goes back to it (the breaker may have moved on). */
function chargedBy(store: RateStore, decision: Decision): Decision {
  if (decision.charge !== undefined) decision.charge = new StoreCharge(store, decision.charge);
  return decision;
}

/**
 * A network store behind a circuit breaker. When the primary fails or is slow, the request is decided
 * by the failure policy at once; while the breaker is open, requests do not wait on the primary at
 * all. Decisions go back to the primary by themselves once a probe succeeds.
 *
 * An adjustment goes to the store that made the decision, whatever the breaker says by then: the
 * charge is in that store. Nothing is adjusted after a decision made without looking.
 */
export class ResilientStore implements RateStore {
  private readonly breaker: CircuitBreaker;
  private readonly counters = { primary: 0, degraded: 0, failures: 0 };
  private lastError: unknown;
  private readonly unavailable: Decision;

  constructor(private readonly options: ResilientStoreOptions) {
    const probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.breaker =
      options.breaker ??
      new CircuitBreaker({
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
        return chargedBy(this.options.primary, decision);
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
        return chargedBy(this.options.fallback, this.options.fallback.decide(checks, now));
      case 'open':
        return ADMIT;
      case 'closed':
        return this.unavailable;
    }
  }

  /**
   * Back to the store that decided. A failure of the primary rejects (never throws); it does not
   * count against the breaker, which judges decisions.
   */
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now?: number): void | Promise<void> {
    const charge = decision.charge;
    if (!decision.allowed || !(charge instanceof StoreCharge)) return;
    const own: Decision = { allowed: true, retryAfterMs: 0, results: decision.results, charge: charge.charge };
    if (charge.store === this.options.fallback) return charge.store.adjust(own, checks, deltas, now ?? this.options.clock.now());
    try {
      return Promise.resolve(charge.store.adjust(own, checks, deltas, now));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.options.primary.close(), this.options.fallback.close()]);
  }
}
