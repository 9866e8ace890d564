import type { Backend } from '../backend/types.ts';
import type { PolicyCheck } from '../policy.ts';
import type { Decision } from '../store/types.ts';

/** What one admitted decision charged: adjusted as a whole when its call ends. */
export interface Charge {
  checks: readonly PolicyCheck[];
  decision: Decision;
}

/** What an admitted prompt fetch holds until it ends. */
export interface Reservation {
  /** The backend that decided (after a reload that moved the state, nothing is adjusted). */
  backend: Backend;
  /** The enforced charge (none when nothing was decided: only a concurrency cap) and admitted shadow charges. */
  charges: Charge[];
  /** Frees the concurrency slot, if the call holds one. */
  release: (() => void) | undefined;
  signal: AbortSignal | undefined;
}

/** How a prompt fetch ended (postPromptFetch). */
export interface PromptEnd {
  outcome: 'completed' | 'failed' | 'cancelled';
  actualTokens?: number;
}

interface Held extends Reservation {
  id: string;
  /** Listens to the call's signal (this object is the listener: no closure per call). */
  handleEvent(): void;
}

/**
 * The prompt fetches admitted and not yet ended, by call id. A call's end settles what it reserved:
 * the slot is freed, an estimate becomes the actual token count, and a call cancelled before it ran
 * (its signal aborted, or its end says so without tokens) is given back entirely. Bounded: a host
 * that never reports an end cannot grow it; the oldest call is then let go, its charge standing as
 * estimated and its slot freed.
 */
export class Reservations {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly capacity: number,
    /** The backend in use now: a reservation made on another one is not adjusted. */
    private readonly current: () => Backend,
    private readonly now: () => number,
    /** A settlement that failed where nobody waits for it (a cancellation). */
    private readonly failedLater: (error: unknown) => void,
    private readonly settled?: (outcome: 'committed' | 'refunded') => void,
  ) {}

  get size(): number {
    return this.held.size;
  }

  hold(id: string, reservation: Reservation): void {
    const previous = this.held.get(id);
    // The same call admitted twice: the earlier one is over as far as anyone can tell.
    if (previous !== undefined) this.letGo(previous);
    else if (this.held.size >= this.capacity) this.letGo(this.held.values().next().value as Held);
    const self = this;
    const entry: Held = {
      ...reservation,
      id,
      handleEvent() {
        if (self.held.get(id) === entry) self.cancelled(entry);
      },
    };
    if (reservation.signal?.aborted) return this.cancelled(entry);
    reservation.signal?.addEventListener('abort', entry, { once: true });
    this.held.set(id, entry);
  }

  /** The call ended: its slot is freed, and what it was charged becomes what it used. */
  end(id: string, end: PromptEnd): void {
    const entry = this.take(id);
    if (entry !== undefined) this.settle(entry, end);
  }

  private cancelled(entry: Held): void {
    this.take(entry.id);
    try {
      this.settle(entry, { outcome: 'cancelled' });
    } catch (error) {
      this.failedLater(error);
    }
  }

  private settle(entry: Held, { outcome, actualTokens }: PromptEnd): void {
    entry.release?.();
    const refund = outcome === 'cancelled' && actualTokens === undefined;
    if (!refund && actualTokens === undefined) return;
    // Nothing to adjust when a reload moved the state to another backend.
    if (entry.backend === this.current()) for (const charge of entry.charges) this.adjust(entry.backend, charge, refund, actualTokens);
    this.settled?.(refund ? 'refunded' : 'committed');
  }

  private adjust(backend: Backend, { checks, decision }: Charge, refund: boolean, actualTokens: number | undefined): void {
    // A blind decision charged nothing.
    if (decision.results.length === 0) return;
    const deltas = checks.map((check) => {
      const cost = check.cost ?? 1;
      if (refund) return -cost;
      return check.rule.unit === 'tokens' && actualTokens !== undefined ? actualTokens - cost : 0;
    });
    if (deltas.every((d) => d === 0)) return;
    backend.adjust(decision, checks, deltas, this.now());
  }

  private take(id: string): Held | undefined {
    const entry = this.held.get(id);
    if (entry === undefined) return undefined;
    this.held.delete(id);
    entry.signal?.removeEventListener('abort', entry);
    return entry;
  }

  private letGo(entry: Held): void {
    this.take(entry.id);
    entry.release?.();
  }
}
