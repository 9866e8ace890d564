import type { Algorithm } from './types.ts';

/**
 * The sliding window for charges of different weights (tokens), in bounded space: charges are
 * coalesced into slots of slotMs(W) (see there), and a charge made at t counts as made at the end of
 * its slot, slotEnd(t). A charge is admitted when the tokens of the slots ending inside the window
 * (later than now - W) plus its own are at most the limit.
 *
 * A slot ends no earlier than the charges it holds, so a charge leaves the window no earlier than it
 * would by its own time: no window of length W ever holds more than `limit` tokens. It leaves less than
 * one slot later (a slot is 1/64 to 1/25.6 of the window, and at least 1 ms), so a wait is at most that
 * much longer than an exact log's.
 *
 * The log is one flat array, slot end and tokens alternating ([e0, c0, e1, c1, ...]), oldest first,
 * ends increasing, every slot holding a positive amount: plain numbers, stored unboxed. Slots that have
 * left the window are dropped on every write, so it holds one window of slots at most (65, whatever
 * the budget), and every operation on it is bounded work. Costs are integers, so the sums are exact.
 */
export type SlidingLogState = number[];

/** The most slots one window is cut into. */
export const SLOTS_PER_WINDOW = 64;

/**
 * The slot length for a window: the smallest of 1, 2, 5, 10, 20, 50, ... ms that cuts it into at most
 * SLOTS_PER_WINDOW slots (a minute: 1 s, an hour: 100 s, a day: 2000 s). Round lengths, aligned on the
 * epoch, so that charges made on whole seconds (within windows up to about a minute) are counted at
 * their own time. The Redis scripts compute it the same way (slot_ms in store/shared.lua).
 */
export function slotMs(windowMs: number): number {
  const least = windowMs / SLOTS_PER_WINDOW;
  for (let decade = 1; ; decade *= 10) {
    if (decade >= least) return decade;
    if (2 * decade >= least) return 2 * decade;
    if (5 * decade >= least) return 5 * decade;
  }
}

/** The end of the slot a charge made at `t` is counted in (t itself when it falls on a slot's end). */
export function slotEnd(t: number, windowMs: number): number {
  const slot = slotMs(windowMs);
  return Math.ceil(t / slot) * slot;
}

/** Index of the first slot ending later than `edge` (log.length when there is none). */
function firstLive(log: SlidingLogState, edge: number): number {
  let i = 0;
  while (i < log.length && log[i]! <= edge) i += 2;
  return i;
}

/** Tokens of the slots ending later than `edge`, counted from the newest back. */
function usedAfter(log: SlidingLogState, edge: number): number {
  let used = 0;
  for (let i = log.length - 2; i >= 0 && log[i]! > edge; i -= 2) used += log[i + 1]!;
  return used;
}

/** Drops the slots ending at or before `edge` (in place; a few numbers of a short array). */
function prune(log: SlidingLogState, edge: number): void {
  const first = firstLive(log, edge);
  if (first > 0) log.splice(0, first);
}

/**
 * Adds a charge made at `now` to its slot: into the newest slot when that is the same one (or a later
 * one: the clock stepped back, and times stay sorted), else as a new slot at the end.
 */
function record(log: SlidingLogState, now: number, windowMs: number, cost: number): void {
  const end = slotEnd(now, windowMs);
  const newest = log.length - 2;
  if (newest >= 0 && log[newest]! >= end) log[newest + 1]! += cost;
  else log.push(end, cost);
}

/** Index of the slot ending at `end` (-1 when there is none). */
function slotAt(log: SlidingLogState, end: number): number {
  for (let i = log.length - 2; i >= 0 && log[i]! >= end; i -= 2) if (log[i] === end) return i;
  return -1;
}

export const slidingLog: Algorithm<SlidingLogState> = {
  check(state, now, rule, cost = 1) {
    if (state === undefined) return 0;
    const edge = now - rule.windowMs;
    const excess = usedAfter(state, edge) + cost - rule.limit;
    if (excess <= 0) return 0;
    // Wait until the oldest slots holding at least `excess` have left the window.
    let freed = 0;
    for (let i = firstLive(state, edge); i < state.length; i += 2) {
      freed += state[i + 1]!;
      if (freed >= excess) return state[i]! + rule.windowMs - now;
    }
    // Only a cost above the limit gets here, and the stores refuse those before asking.
    return rule.windowMs;
  },
  consume(state, now, rule, cost = 1) {
    if (state === undefined) return [slotEnd(now, rule.windowMs), cost];
    prune(state, now - rule.windowMs);
    record(state, now, rule.windowMs, cost);
    return state;
  },
  standing(state, now, rule) {
    if (state === undefined || state.length === 0) return { remaining: rule.limit, resetMs: 0 };
    const used = usedAfter(state, now - rule.windowMs);
    return {
      remaining: Math.max(0, rule.limit - used),
      resetMs: used === 0 ? 0 : state[state.length - 2]! + rule.windowMs - now,
    };
  },
  expiresAt: (state, rule) => (state.length === 0 ? 0 : state[state.length - 2]! + rule.windowMs),
  adjust(state, now, rule, at, _cost, delta) {
    const log = state ?? [];
    prune(log, now - rule.windowMs);
    // The charge went into the slot of its time; that slot changes by delta (never below nothing: a
    // charge the clock stepping back put into a later slot has no more to give back here).
    const slot = slotAt(log, slotEnd(at, rule.windowMs));
    if (slot >= 0) {
      const left = log[slot + 1]! + delta;
      if (left > 0) log[slot + 1] = left;
      else log.splice(slot, 2);
    } else if (delta > 0) {
      // The slot has left the window (or the key was evicted): what was spent beyond it counts now.
      record(log, now, rule.windowMs, delta);
    }
    return log.length === 0 ? undefined : log;
  },
};
