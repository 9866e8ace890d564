import { isThenable } from './thenable.ts';
import type { BackendErrorPolicy } from './store/resilient.ts';
import type { ConcurrencyGate, SlotRequest, SlotResult } from './concurrency/types.ts';

/** The shared gate could not answer and the policy is "closed": the call is refused as unavailable. */
export class GateUnavailable extends Error {
  constructor(cause: unknown) {
    super('concurrency backend unavailable', { cause });
  }
}

const NO_SLOT: SlotResult = { ok: true, release: () => undefined };

export interface ResilientGateOptions {
  primary: ConcurrencyGate;
  /** Holds slots in this process while the primary fails, under the "fallback" policy. */
  fallback: ConcurrencyGate;
  policy: BackendErrorPolicy;
  onFailure?: (error: unknown) => void;
}

/**
 * The Redis gate with the same failure policy as the rate store: when Redis cannot answer, slots are
 * held in this process (fallback), not held at all (open), or the call is refused (closed).
 */
export class ResilientGate implements ConcurrencyGate {
  constructor(private readonly options: ResilientGateOptions) {}

  get held(): number {
    return this.options.primary.held + this.options.fallback.held;
  }

  acquire(request: SlotRequest): SlotResult | Promise<SlotResult> {
    let answer: SlotResult | Promise<SlotResult>;
    try {
      answer = this.options.primary.acquire(request);
    } catch (error) {
      return this.failed(error, request);
    }
    return isThenable(answer) ? answer.then(undefined, (error: unknown) => this.failed(error, request)) : answer;
  }

  private failed(error: unknown, request: SlotRequest): SlotResult | Promise<SlotResult> {
    this.options.onFailure?.(error);
    switch (this.options.policy) {
      case 'fallback':
        return this.options.fallback.acquire(request);
      case 'open':
        return NO_SLOT;
      case 'closed':
        throw new GateUnavailable(error);
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
