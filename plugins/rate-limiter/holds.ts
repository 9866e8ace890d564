import type { PolicyCheck } from './policy.ts';
import type { Decision, RateStore } from './store/types.ts';

/** What an admitted prompt fetch was charged, kept until it ends. */
export interface Hold {
  /** The store that decided (after a reload that moved the state, nothing is adjusted). */
  store: RateStore;
  checks: readonly PolicyCheck[];
  /** Undefined when nothing was decided (no rates, only a concurrency cap). */
  decision: Decision | undefined;
  /** Admitted shadow decisions, adjusted like the enforced one. */
  shadow: { checks: readonly PolicyCheck[]; decision: Decision }[] | undefined;
  /** Frees the concurrency slot, if the call holds one. */
  release: (() => void) | undefined;
  signal: AbortSignal | undefined;
}

interface Entry extends Hold {
  onAbort: (() => void) | undefined;
}

/**
 * The prompt fetches admitted and not yet ended, by message and prompt. A call whose signal aborts
 * before its end is reported is handed to `onCancel` (it gives back what it was charged). Bounded: an
 * orchestrator that never reports an end cannot grow it; the oldest call is then let go, its charge
 * standing as estimated and its slot freed.
 */
export class Holds {
  private readonly held = new Map<string, Entry>();

  constructor(
    private readonly capacity: number,
    private readonly onCancel: (hold: Hold) => void,
  ) {}

  get size(): number {
    return this.held.size;
  }

  add(id: string, hold: Hold): void {
    const previous = this.held.get(id);
    // The same message and prompt admitted twice: the earlier call is over as far as anyone can tell.
    if (previous !== undefined) this.letGo(id, previous);
    else if (this.held.size >= this.capacity) {
      const [oldestId, oldest] = this.held.entries().next().value as [string, Entry];
      this.letGo(oldestId, oldest);
    }
    const entry: Entry = { ...hold, onAbort: undefined };
    if (hold.signal !== undefined) {
      if (hold.signal.aborted) return this.onCancel(entry);
      entry.onAbort = () => {
        if (this.held.get(id) !== entry) return;
        this.held.delete(id);
        this.onCancel(entry);
      };
      hold.signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    this.held.set(id, entry);
  }

  /** The call's hold, no longer held (its end was reported). */
  take(id: string): Hold | undefined {
    const entry = this.held.get(id);
    if (entry === undefined) return undefined;
    this.held.delete(id);
    this.detach(entry);
    return entry;
  }

  private letGo(id: string, entry: Entry): void {
    this.held.delete(id);
    this.detach(entry);
    entry.release?.();
  }

  private detach(entry: Entry): void {
    if (entry.onAbort !== undefined) entry.signal?.removeEventListener('abort', entry.onAbort);
  }
}
