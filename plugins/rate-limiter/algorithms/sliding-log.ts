import type { Algorithm } from './types.ts';

/**
 * The exact sliding window for charges of different weights (tokens): a log of (time, cost) entries,
 * oldest first. A charge is admitted when the costs recorded inside the window (later than now - W)
 * plus its own are at most the limit, so no window of length W ever holds more than `limit` tokens.
 *
 * The log is one flat array, time and cost alternating ([t0, c0, t1, c1, ...]): plain numbers, stored
 * unboxed. Entries that have left the window are dropped on every write, so it holds at most one
 * window of charges. Costs are integers, so the sums are exact.
 */
export type SlidingLogState = number[];

/** Index of the first entry later than `edge` (log.length when there is none). */
function firstLive(log: SlidingLogState, edge: number): number {
  let i = 0;
  while (i < log.length && log[i]! <= edge) i += 2;
  return i;
}

/** Sum of the costs later than `edge`, counted from the newest back. */
function usedAfter(log: SlidingLogState, edge: number): number {
  let used = 0;
  for (let i = log.length - 2; i >= 0 && log[i]! > edge; i -= 2) used += log[i + 1]!;
  return used;
}

/** Drops the entries at or before `edge` (in place). */
function prune(log: SlidingLogState, edge: number): void {
  const first = firstLive(log, edge);
  if (first > 0) log.splice(0, first);
}

/** Appends a charge, keeping times sorted even if the clock steps back. */
function record(log: SlidingLogState, now: number, cost: number): void {
  const newest = log.length > 0 ? log[log.length - 2]! : now;
  log.push(newest > now ? newest : now, cost);
}

export const slidingLog: Algorithm<SlidingLogState> = {
  check(state, now, rule, cost = 1) {
    if (state === undefined) return 0;
    const edge = now - rule.windowMs;
    const excess = usedAfter(state, edge) + cost - rule.limit;
    if (excess <= 0) return 0;
    // Wait until the oldest entries holding at least `excess` have left the window.
    let freed = 0;
    for (let i = firstLive(state, edge); i < state.length; i += 2) {
      freed += state[i + 1]!;
      if (freed >= excess) return state[i]! + rule.windowMs - now;
    }
    // Only a cost above the limit gets here, and the stores refuse those before asking.
    return rule.windowMs;
  },
  consume(state, now, rule, cost = 1) {
    if (state === undefined) return [now, cost];
    prune(state, now - rule.windowMs);
    record(state, now, cost);
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
  adjust(state, now, rule, at, cost, delta) {
    const log = state ?? [];
    prune(log, now - rule.windowMs);
    // The charge's own entry: same time, same cost (equal entries are interchangeable; take the newest).
    let found = -1;
    for (let i = log.length - 2; i >= 0 && log[i]! >= at; i -= 2) {
      if (log[i] === at && log[i + 1] === cost) {
        found = i;
        break;
      }
    }
    if (found >= 0) {
      const left = cost + delta;
      if (left > 0) log[found + 1] = left;
      else log.splice(found, 2);
    } else if (delta > 0) {
      // The entry has left the window (or the key was evicted): what was spent beyond it counts now.
      record(log, now, delta);
    }
    return log.length === 0 ? undefined : log;
  },
};
