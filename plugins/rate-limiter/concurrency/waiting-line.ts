import type { Clock } from '../../../src/plugin-sdk.ts';
import { refusal, type SlotLimit, type SlotRequest, type SlotResult } from './types.ts';

/**
 * One call waiting for a slot, as the line sees it; each gate adds what it needs. `K` is what the gate
 * counts slots by: a key's state in memory, a key's name on Redis.
 */
export interface Waiter<K> {
  /** Arrival order, set by the line. */
  seq: number;
  readonly request: SlotRequest;
  /** What it waits for, one per limit of the request. */
  readonly keys: readonly K[];
  readonly started: number;
  /** The limit found full last time this waiter was looked at. */
  blockedOn: SlotLimit;
  /** Its one pending timer (the queue timeout, or the next ask): cleared when it leaves the line. */
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** In the line of each of its keys (see list()). */
  listed: boolean;
  /** Out of the line: granted, refused or failed. */
  done: boolean;
  resolve(result: SlotResult): void;
}

export interface WaitingLineOptions<K, W extends Waiter<K>> {
  clock: Clock;
  /** The limit a refusal names, when it has a fresher answer than the waiter's blockedOn. */
  fullNow?: (waiter: W) => SlotLimit | undefined;
  /** Called each time a waiter has left the line (the memory gate then deletes keys no one uses). */
  left?: (waiter: W) => void;
}

const NO_ONE: readonly never[] = [];

function byArrival(a: Waiter<unknown>, b: Waiter<unknown>): number {
  return a.seq - b.seq;
}

/**
 * The calls waiting for a slot, in arrival order, and the line of each key they wait for. A waiter is
 * refused as 'aborted' when its signal aborts while it waits, and as 'timeout' when a timeout set by
 * timeOut() passes first; it leaves the line once, granted, refused or failed. Which waiters a freed
 * slot wakes, and how they ask again, is the gate's: the line hands them over in arrival order.
 */
export class WaitingLine<K, W extends Waiter<K>> {
  private readonly everyone = new Set<W>();
  private readonly lines = new Map<K, Set<W>>();
  private seq = 0;

  constructor(private readonly options: WaitingLineOptions<K, W>) {}

  /** Calls waiting, listed in the lines of their keys or not yet. */
  get size(): number {
    return this.everyone.size;
  }

  /** Takes a waiter in, behind everyone before it; from now on an abort of its call refuses it. */
  enter(waiter: W): void {
    waiter.seq = ++this.seq;
    this.everyone.add(waiter);
    const { signal } = waiter.request;
    if (signal !== undefined) {
      waiter.onAbort = () => this.giveUp(waiter, 'aborted');
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
  }

  /** Refuses the waiter as 'timeout' in `ms` unless it has left the line by then. */
  timeOut(waiter: W, ms: number): void {
    waiter.timer = setTimeout(() => this.giveUp(waiter, 'timeout'), ms);
    waiter.timer.unref?.();
  }

  /** Puts a waiter in the line of each of its keys, behind those already there (once). */
  list(waiter: W): void {
    if (waiter.listed) return;
    waiter.listed = true;
    for (const key of waiter.keys) {
      let line = this.lines.get(key);
      if (line === undefined) this.lines.set(key, (line = new Set()));
      line.add(waiter);
    }
  }

  /** Whether anyone is listed for this key. */
  waitsFor(key: K): boolean {
    return this.lines.has(key);
  }

  /** Those listed for one key, in the order they were listed; undefined when no one is. */
  lineOf(key: K): ReadonlySet<W> | undefined {
    return this.lines.get(key);
  }

  /** Everyone listed for any of these keys, earliest arrival first (a copy: granting them changes the lines). */
  listedFor(keys: readonly K[]): readonly W[] {
    if (keys.length === 1) {
      const line = this.lines.get(keys[0]!);
      return line === undefined ? NO_ONE : [...line];
    }
    let seen: Set<W> | undefined;
    for (const key of keys) {
      const line = this.lines.get(key);
      if (line === undefined) continue;
      seen ??= new Set();
      for (const waiter of line) seen.add(waiter);
    }
    return seen === undefined ? NO_ONE : [...seen].sort(byArrival);
  }

  /** Takes a waiter out of line, before it is granted, refused or failed: no more timer, no more abort listener. */
  leave(waiter: W): void {
    waiter.done = true;
    this.everyone.delete(waiter);
    clearTimeout(waiter.timer);
    waiter.timer = undefined;
    if (waiter.onAbort !== undefined) waiter.request.signal!.removeEventListener('abort', waiter.onAbort);
    if (waiter.listed) {
      for (const key of waiter.keys) {
        const line = this.lines.get(key);
        if (line === undefined) continue;
        line.delete(waiter);
        if (line.size === 0) this.lines.delete(key);
      }
    }
    this.options.left?.(waiter);
  }

  /** Refuses a waiter still in line, naming the limit it waits for and how long it waited. */
  giveUp(waiter: W, reason: 'timeout' | 'aborted'): void {
    if (waiter.done) return;
    this.leave(waiter);
    const limit = this.options.fullNow?.(waiter) ?? waiter.blockedOn;
    waiter.resolve(refusal(waiter.request, reason, limit, Math.max(0, this.options.clock.now() - waiter.started)));
  }

  /** Refuses everyone still waiting ('aborted'), earliest first. */
  close(): void {
    for (const waiter of [...this.everyone]) this.giveUp(waiter, 'aborted');
  }
}
