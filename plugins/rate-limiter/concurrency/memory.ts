import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';
import { HeldSlots } from './held-slots.ts';
import { KeyCounts, type KeyState } from './memory-counts.ts';
import { LeaseExpiry, type LeasedSlot } from './memory-leases.ts';
import { refusal, type ConcurrencyGate, type SlotLimit, type SlotRequest, type SlotResult } from './types.ts';
import { WaitingLine, type Waiter } from './waiting-line.ts';

export interface MemoryConcurrencyGateOptions {
  /**
   * A slot not released within this long counts as released, so a call that never finishes (or never
   * calls release()) cannot hold it for ever. Default 60 s.
   */
  leaseMs?: number;
  clock?: Clock;
}

interface Slot extends LeasedSlot {
  states: readonly KeyState[];
  /** Each key's epoch when the slot was taken (see KeyCounts). */
  epochs: number[];
}

/** Waits on the states of its keys (kept while it waits). */
type MemoryWaiter = Waiter<KeyState>;

const NOOP_RELEASE: SlotResult = { ok: true, release: () => {} };

function sameSlot(slot: SlotResult): SlotResult {
  return slot;
}

/**
 * Concurrency slots of one process. Each key counts its slots in use (KeyCounts); a call that finds a
 * key full waits in line (WaitingLine), first come, first served among the waiters that can go: a
 * release grants, in arrival order, every waiter whose keys all have room. An earlier waiter is passed
 * only by calls that do not need the key it is stuck on (another user of the tenant goes ahead of a
 * user at their own cap), and never for longer than its queue timeout.
 *
 * Slots held (HeldSlots) carry a lease (LeaseExpiry): one not released in time counts as released,
 * noticed lazily whenever the gate is used, or by one lease timer while someone waits.
 */
export class MemoryConcurrencyGate implements ConcurrencyGate {
  private readonly counts: KeyCounts;
  private readonly slots: HeldSlots<Slot>;
  private readonly leases: LeaseExpiry<Slot>;
  private readonly line: WaitingLine<KeyState, MemoryWaiter>;
  private closed = false;
  private readonly clock: Clock;

  constructor(options: MemoryConcurrencyGateOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.counts = new KeyCounts((state) => this.line.waitsFor(state));
    this.slots = new HeldSlots((slot) => {
      this.counts.give(slot.states, slot.epochs);
      this.wake(slot.states);
    });
    this.leases = new LeaseExpiry(this.slots, {
      leaseMs: options.leaseMs ?? 60_000,
      clock: this.clock,
      expire: () => this.expire(),
      watched: () => this.line.size > 0 && !this.closed,
    });
    this.line = new WaitingLine<KeyState, MemoryWaiter>({
      clock: this.clock,
      fullNow: (waiter) => this.counts.firstFull(waiter.request.limits),
      // Its keys, if nothing is in use on them any more, go with it.
      left: (waiter) => {
        for (const state of waiter.keys) this.counts.prune(state);
      },
    });
  }

  get held(): number {
    this.expire();
    return this.slots.size;
  }

  /** Keys tracked (in use or waited for): for bounds and tests. */
  get keys(): number {
    return this.counts.size;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.line.size;
  }

  acquire(request: SlotRequest): SlotResult | Promise<SlotResult> {
    return this.take(request, sameSlot);
  }

  /**
   * acquire() handing the result to `next`: called at once when the answer is known now (room, or no
   * queue), after the wait otherwise.
   */
  take<T>(request: SlotRequest, next: (slot: SlotResult) => T | Promise<T>): T | Promise<T> {
    const { limits, signal } = request;
    if (limits.length === 0) return next(NOOP_RELEASE);
    if (this.closed || signal?.aborted) return next(refusal(request, 'aborted', undefined, 0));
    // Expired leases first, and their waiters served, so a newcomer does not take what they waited for.
    this.expire();
    const full = this.counts.firstFull(limits);
    if (full === undefined) return next(this.grant(this.counts.statesOf(limits), signal));
    if (request.queueTimeoutMs <= 0) return next(refusal(request, 'timeout', full, 0));
    return this.wait(request, full).then(next);
  }

  private wait(request: SlotRequest, full: SlotLimit): Promise<SlotResult> {
    return new Promise<SlotResult>((resolve) => {
      const waiter: MemoryWaiter = {
        seq: 0,
        request,
        keys: this.counts.statesOf(request.limits),
        started: this.clock.now(),
        blockedOn: full,
        timer: undefined,
        onAbort: undefined,
        listed: false,
        done: false,
        resolve,
      };
      this.line.enter(waiter);
      this.line.list(waiter);
      this.line.timeOut(waiter, request.queueTimeoutMs);
      this.leases.watch();
    });
  }

  async inUse(keys: readonly string[]): Promise<number[]> {
    this.expire();
    return this.counts.inUse(keys);
  }

  async forget(tag: string, owns: (key: string) => boolean): Promise<number> {
    const dropped = this.counts.forget(tag, owns);
    this.wake(dropped);
    return dropped.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.leases.stop();
    this.line.close();
    for (const slot of [...this.slots]) {
      this.slots.drop(slot);
      this.counts.give(slot.states, slot.epochs);
    }
    this.counts.clear();
  }

  private grant(states: readonly KeyState[], signal: AbortSignal | undefined): SlotResult {
    const slot: Slot = {
      states,
      epochs: this.counts.take(states),
      expiresAt: this.leases.expiresAt(),
      signal,
      onAbort: undefined,
      done: false,
    };
    return this.slots.hold(slot);
  }

  /** Grants, in arrival order, every waiter on these keys whose keys all have room. */
  private wake(states: readonly KeyState[]): void {
    for (const waiter of this.line.listedFor(states)) {
      if (waiter.done) continue;
      const full = this.counts.firstFull(waiter.request.limits);
      if (full !== undefined) {
        waiter.blockedOn = full;
        continue;
      }
      // Taken before anything else can run: the slot is the waiter's from now on. (Granted before
      // leaving the line, so its keys, in use again, are not deleted.)
      const granted = this.grant(waiter.keys, waiter.request.signal);
      this.line.leave(waiter);
      waiter.resolve(granted);
    }
  }

  /** Gives back the slots whose lease ran out and serves their waiters. */
  private expire(): void {
    const expired = this.leases.takeExpired();
    if (expired === undefined) return;
    const freed = new Set<KeyState>();
    for (const slot of expired) {
      this.counts.give(slot.states, slot.epochs);
      for (const state of slot.states) freed.add(state);
    }
    this.wake([...freed]);
  }
}
