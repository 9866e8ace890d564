import type { SlotResult } from './types.ts';

/** A slot this process holds, as the held set sees it; each gate adds what it needs to give it back. */
export interface HeldSlot {
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Given back (or dropped): nothing more to do for it. */
  done: boolean;
}

/**
 * The slots this process holds, oldest first. A slot is given back once, by the first of: its
 * release(), an abort of its call, or the gate itself (a lease ran out, a renewal found it held too
 * long). Giving one back calls `released`, which frees what the gate counted for it; drop() forgets a
 * slot without that, for a gate that frees it its own way.
 */
export class HeldSlots<S extends HeldSlot> {
  private readonly slots = new Set<S>();

  constructor(private readonly released: (slot: S) => void) {}

  get size(): number {
    return this.slots.size;
  }

  /** The slot held longest, if any. */
  oldest(): S | undefined {
    for (const slot of this.slots) return slot;
    return undefined;
  }

  /** Oldest first. */
  [Symbol.iterator](): IterableIterator<S> {
    return this.slots.values();
  }

  /** Holds a slot until its release(), or until its call is aborted. */
  hold(slot: S): SlotResult {
    this.slots.add(slot);
    if (slot.signal !== undefined) {
      slot.onAbort = () => this.release(slot);
      slot.signal.addEventListener('abort', slot.onAbort, { once: true });
    }
    return { ok: true, release: () => this.release(slot) };
  }

  /** Gives a slot back; a second time does nothing. */
  release(slot: S): void {
    if (slot.done) return;
    this.drop(slot);
    this.released(slot);
  }

  /** Forgets a slot without calling `released`. */
  drop(slot: S): void {
    slot.done = true;
    this.slots.delete(slot);
    if (slot.onAbort !== undefined) slot.signal!.removeEventListener('abort', slot.onAbort);
  }
}
