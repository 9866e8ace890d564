import type { Clock } from '../../src/plugin-sdk.ts';
import type { CircuitBreaker } from './breaker.ts';
import type { BackendErrorPolicy } from './store/resilient.ts';
import { refusal, type ConcurrencyGate, type SlotRequest, type SlotResult } from './concurrency/types.ts';

const NO_SLOT: SlotResult = { ok: true, release: () => undefined };

export interface ResilientGateOptions {
  primary: ConcurrencyGate;
  /** Holds slots in this process while the primary fails, under the "fallback" policy. */
  fallback: ConcurrencyGate;
  policy: BackendErrorPolicy;
  /** Shared with the rate store: one view of whether the backend answers. */
  breaker: CircuitBreaker;
  clock: Clock;
  onFailure?: (error: unknown) => void;
}

/**
 * The Redis gate behind the backend's one breaker, with the same failure policy as the rate store:
 * while Redis cannot answer, slots are held in this process (fallback), not held at all (open), or
 * the call is refused as unavailable (closed). An open breaker answers at once, without waiting out
 * a Redis timeout per call.
 */
export class ResilientGate implements ConcurrencyGate {
  constructor(private readonly options: ResilientGateOptions) {}

  get held(): number {
    return this.options.primary.held + this.options.fallback.held;
  }

  async acquire(request: SlotRequest): Promise<SlotResult> {
    const { breaker, clock, primary } = this.options;
    if (!breaker.allow(clock.now())) return this.degraded(request);
    try {
      const slot = await primary.acquire(request);
      breaker.success();
      return slot;
    } catch (error) {
      this.options.onFailure?.(error);
      breaker.failure(clock.now());
      return this.degraded(request);
    }
  }

  private degraded(request: SlotRequest): SlotResult | Promise<SlotResult> {
    switch (this.options.policy) {
      case 'fallback':
        return this.options.fallback.acquire(request);
      case 'open':
        return NO_SLOT;
      case 'closed':
        return refusal(request, 'unavailable', undefined, 0);
    }
  }

  inUse(keys: readonly string[]): Promise<number[]> {
    return this.options.primary.inUse(keys);
  }

  async forget(tag: string, owns: (key: string) => boolean): Promise<number> {
    const [primary, fallback] = await Promise.all([
      this.options.primary.forget?.(tag, owns) ?? 0,
      this.options.fallback.forget?.(tag, owns) ?? 0,
    ]);
    return primary + fallback;
  }

  async close(): Promise<void> {
    await Promise.all([this.options.primary.close(), this.options.fallback.close()]);
  }
}
