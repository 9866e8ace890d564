import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';
import { refusal, type ConcurrencyGate, type SlotLimit, type SlotRequest, type SlotResult } from './types.ts';

export interface MemoryConcurrencyGateOptions {
  /**
   * A slot not released within this long counts as released, so a call that never finishes (or never
   * calls release()) cannot hold it for ever. Default 60 s.
   */
  leaseMs?: number;
  clock?: Clock;
}

interface KeyState {
  key: string;
  inUse: number;
  /** Waiting for this key (among others), in arrival order. */
  waiters: Set<Waiter>;
  /** Bumped by forget(): slots taken before it no longer count here. */
  epoch: number;
}

interface Slot {
  states: KeyState[];
  epochs: number[];
  expiresAt: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

interface Waiter {
  seq: number;
  request: SlotRequest;
  states: KeyState[];
  started: number;
  /** The limit found full last time this waiter was looked at. */
  blockedOn: SlotLimit;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  resolve(result: SlotResult): void;
  done: boolean;
}

const NOOP_RELEASE: SlotResult = { ok: true, release: () => {} };

function sameSlot(slot: SlotResult): SlotResult {
  return slot;
}

/**
 * Concurrency slots of one process. Each key counts its slots in use; a call that finds a key full
 * waits in line (first come, first served among the waiters that can go: a release grants, in
 * arrival order, every waiter whose keys all have room). An earlier waiter is passed only by calls
 * that do not need the key it is stuck on (another user of the tenant goes ahead of a user at their
 * own cap), and never for longer than its queue timeout.
 *
 * Leases expire lazily: slots live in one set in the order taken, which (one lease length for all)
 * is the order they expire in, so expired ones are dropped from its front whenever the gate is used;
 * one timer, armed only while someone waits, covers the earliest lease. A key with nothing in use and
 * no one waiting is deleted.
 */
export class MemoryConcurrencyGate implements ConcurrencyGate {
  private readonly states = new Map<string, KeyState>();
  /** Live slots, oldest lease first. */
  private readonly live = new Set<Slot>();
  private waiting = 0;
  private seq = 0;
  private leaseTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly leaseMs: number;
  private readonly clock: Clock;

  constructor(options: MemoryConcurrencyGateOptions = {}) {
    this.leaseMs = options.leaseMs ?? 60_000;
    this.clock = options.clock ?? systemClock;
  }

  get held(): number {
    this.expire();
    return this.live.size;
  }

  /** Keys tracked (in use or waited for): for bounds and tests. */
  get keys(): number {
    return this.states.size;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.waiting;
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
    const full = this.firstFull(limits);
    if (full === undefined) return next(this.grant(this.stateList(limits), signal));
    if (request.queueTimeoutMs <= 0) return next(refusal(request, 'timeout', full, 0));
    return this.wait(request, full).then(next);
  }

  private wait(request: SlotRequest, full: SlotLimit): Promise<SlotResult> {
    const { limits, signal } = request;
    return new Promise<SlotResult>((resolve) => {
      const waiter: Waiter = {
        seq: ++this.seq,
        request,
        states: this.stateList(limits),
        started: this.clock.now(),
        blockedOn: full,
        timer: undefined,
        onAbort: undefined,
        resolve,
        done: false,
      };
      for (const state of waiter.states) state.waiters.add(waiter);
      this.waiting++;
      waiter.timer = setTimeout(() => this.giveUp(waiter, 'timeout'), request.queueTimeoutMs);
      waiter.timer.unref?.();
      if (signal !== undefined) {
        waiter.onAbort = () => this.giveUp(waiter, 'aborted');
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.armLeaseTimer();
    });
  }

  async inUse(keys: readonly string[]): Promise<number[]> {
    this.expire();
    return keys.map((key) => this.states.get(key)?.inUse ?? 0);
  }

  async forget(tag: string, owns: (key: string) => boolean): Promise<number> {
    const dropped: KeyState[] = [];
    for (const state of this.states.values()) {
      if (state.inUse > 0 && state.key.startsWith(tag) && owns(state.key)) dropped.push(state);
    }
    for (const state of dropped) {
      state.epoch++;
      state.inUse = 0;
      this.prune(state);
    }
    this.wake(dropped);
    return dropped.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.leaseTimer);
    this.leaseTimer = undefined;
    const waiters = new Set<Waiter>();
    for (const state of this.states.values()) for (const waiter of state.waiters) waiters.add(waiter);
    for (const waiter of waiters) this.giveUp(waiter, 'aborted');
    for (const slot of [...this.live]) this.free(slot);
    this.states.clear();
  }

  private firstFull(limits: readonly SlotLimit[]): SlotLimit | undefined {
    for (const limit of limits) {
      if ((this.states.get(limit.key)?.inUse ?? 0) >= limit.limit) return limit;
    }
    return undefined;
  }

  private stateList(limits: readonly SlotLimit[]): KeyState[] {
    return limits.map(({ key }) => {
      let state = this.states.get(key);
      if (state === undefined) {
        state = { key, inUse: 0, waiters: new Set(), epoch: 0 };
        this.states.set(key, state);
      }
      return state;
    });
  }

  private grant(states: KeyState[], signal: AbortSignal | undefined): SlotResult {
    const slot: Slot = {
      states,
      epochs: states.map((s) => s.epoch),
      expiresAt: this.clock.now() + this.leaseMs,
      signal,
      onAbort: undefined,
      done: false,
    };
    for (const state of states) state.inUse++;
    this.live.add(slot);
    if (signal !== undefined) {
      slot.onAbort = () => this.release(slot);
      signal.addEventListener('abort', slot.onAbort, { once: true });
    }
    return { ok: true, release: () => this.release(slot) };
  }

  private release(slot: Slot): void {
    if (slot.done) return;
    this.free(slot);
    this.wake(slot.states);
  }

  /** Gives a slot's keys back (without serving waiters). */
  private free(slot: Slot): void {
    if (slot.done) return;
    slot.done = true;
    this.live.delete(slot);
    if (slot.onAbort !== undefined) slot.signal!.removeEventListener('abort', slot.onAbort);
    slot.states.forEach((state, i) => {
      // A key forget() reset since does not owe this slot anything.
      if (state.epoch !== slot.epochs[i]) return;
      state.inUse--;
      this.prune(state);
    });
  }

  /** Grants, in arrival order, every waiter on these keys whose keys all have room. */
  private wake(states: readonly KeyState[]): void {
    let candidates: Waiter[];
    if (states.length === 1) {
      candidates = [...states[0]!.waiters];
    } else {
      const seen = new Set<Waiter>();
      for (const state of states) for (const waiter of state.waiters) seen.add(waiter);
      candidates = [...seen].sort((a, b) => a.seq - b.seq);
    }
    for (const waiter of candidates) {
      if (waiter.done) continue;
      const full = this.firstFull(waiter.request.limits);
      if (full !== undefined) {
        waiter.blockedOn = full;
        continue;
      }
      // Taken before anything else can run: the slot is the waiter's from now on. (Granted before
      // leaving the line, so its keys, in use again, are not pruned.)
      const granted = this.grant(waiter.states, waiter.request.signal);
      this.settle(waiter);
      waiter.resolve(granted);
    }
  }

  private giveUp(waiter: Waiter, reason: 'timeout' | 'aborted'): void {
    if (waiter.done) return;
    this.settle(waiter);
    const limit = this.firstFull(waiter.request.limits) ?? waiter.blockedOn;
    waiter.resolve(refusal(waiter.request, reason, limit, Math.max(0, this.clock.now() - waiter.started)));
  }

  /** Takes a waiter out of line (before it is granted or refused). */
  private settle(waiter: Waiter): void {
    waiter.done = true;
    this.waiting--;
    clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.request.signal!.removeEventListener('abort', waiter.onAbort);
    for (const state of waiter.states) {
      state.waiters.delete(waiter);
      this.prune(state);
    }
  }

  /** Deletes a key nothing is in use on and no one waits for. */
  private prune(state: KeyState): void {
    if (state.inUse <= 0 && state.waiters.size === 0 && this.states.get(state.key) === state) {
      this.states.delete(state.key);
      // A slot still pointing at it must not count against a new state for the same key.
      state.epoch++;
    }
  }

  /** Drops expired leases from the front of the set and serves their waiters. */
  private expire(): void {
    const now = this.clock.now();
    let freed: Set<KeyState> | undefined;
    for (const slot of this.live) {
      if (slot.expiresAt > now) break;
      this.free(slot);
      freed ??= new Set();
      for (const state of slot.states) freed.add(state);
    }
    if (freed !== undefined) this.wake([...freed]);
  }

  /** One timer for the earliest lease, only while someone waits (no one else would notice it expire). */
  private armLeaseTimer(): void {
    if (this.leaseTimer !== undefined || this.waiting === 0 || this.closed) return;
    const first = this.live.values().next();
    if (first.done) return;
    const delay = Math.max(0, first.value.expiresAt - this.clock.now());
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = undefined;
      this.expire();
      this.armLeaseTimer();
    }, delay + 1);
    this.leaseTimer.unref?.();
  }
}
