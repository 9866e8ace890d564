export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** While open, one probe request goes through this often. */
  probeIntervalMs: number;
  onChange?: (state: BreakerState, previous: BreakerState) => void;
}

/**
 * Keeps requests from waiting on a backend that is failing: after `failureThreshold` failures in a
 * row it opens, and from then on only one probe per `probeIntervalMs` reaches the backend, until one
 * succeeds and the breaker closes again.
 */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private nextProbeAt = 0;

  constructor(private readonly options: BreakerOptions) {}

  get state(): BreakerState {
    return this.current;
  }

  /** Whether this request may use the backend now (true for the one probe when it is due). */
  allow(now: number): boolean {
    if (this.current === 'closed') return true;
    if (now < this.nextProbeAt) return false;
    // Due: the first probe, or another one because the last never came back.
    this.nextProbeAt = now + this.options.probeIntervalMs;
    if (this.current === 'open') this.set('half_open');
    return true;
  }

  success(): void {
    this.failures = 0;
    if (this.current !== 'closed') this.set('closed');
  }

  failure(now: number): void {
    this.failures++;
    if (this.current === 'half_open' || (this.current === 'closed' && this.failures >= this.options.failureThreshold)) {
      this.nextProbeAt = now + this.options.probeIntervalMs;
      this.set('open');
    }
  }

  /** Opens at once (e.g. the backend was unreachable at startup). */
  trip(now: number): void {
    this.nextProbeAt = now + this.options.probeIntervalMs;
    if (this.current !== 'open') this.set('open');
  }

  private set(state: BreakerState): void {
    const previous = this.current;
    this.current = state;
    this.options.onChange?.(state, previous);
  }
}
