import { slidingLog } from './sliding-log.ts';
import type { Algorithm } from './types.ts';

/**
 * The exact sliding window: a ring of the times of the last `limit` admitted requests. A request is
 * admitted only when the oldest of those is at least one window old, so no window of length W ever
 * holds more than `limit` admissions, at any boundary.
 *
 * The ring is a plain array of numbers, which V8 stores as unboxed doubles (8 bytes each) like a
 * Float64Array, without a typed array's two extra objects (about 150 bytes per key) and their slow
 * allocation. It grows by push until it holds `limit` times, is then trimmed to exactly that size,
 * and from then on the oldest time is overwritten in place.
 *
 * Each time stands for one request, so tokens rules, whose charges weigh differently, are counted by
 * the sliding log instead (see `tokens`).
 */
export interface SlidingWindowState {
  /** Recorded times; `times.length` is how many (at most `limit`). */
  times: number[];
  /** Index of the oldest recorded time (0 until the ring is full). */
  start: number;
}

/** The i-th oldest recorded time (i < times.length). */
function at(state: SlidingWindowState, i: number): number {
  const { times } = state;
  const j = state.start + i;
  return times[j < times.length ? j : j - times.length]!;
}

function newest(state: SlidingWindowState): number {
  const { times, start } = state;
  return times[(start === 0 ? times.length : start) - 1]!;
}

/** How many recorded times are still inside the window (later than now - W). Times are sorted. */
function inWindow(state: SlidingWindowState, now: number, windowMs: number): number {
  const edge = now - windowMs;
  const size = state.times.length;
  // The common cases need no search: every time recorded is inside the window, or none is.
  if (at(state, 0) > edge) return size;
  if (newest(state) <= edge) return 0;
  let lo = 1;
  let hi = size - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at(state, mid) <= edge) lo = mid + 1;
    else hi = mid;
  }
  return size - lo;
}

export const slidingWindow: Algorithm<SlidingWindowState> = {
  check(state, now, rule) {
    if (state === undefined || state.times.length < rule.limit) return 0;
    // The ring is full: the oldest entry is the limit-th most recent admission.
    const wait = at(state, 0) + rule.windowMs - now;
    return wait <= 0 ? 0 : wait;
  },
  consume(state, now, rule) {
    if (state === undefined) return { times: [now], start: 0 };
    const { times } = state;
    // Keep the ring sorted even if the clock steps back.
    const time = times.length > 0 ? Math.max(now, newest(state)) : now;
    if (times.length >= rule.limit) {
      // Overwrite the oldest: only the last `limit` admissions matter.
      times[state.start] = time;
      state.start = state.start + 1 === times.length ? 0 : state.start + 1;
      return state;
    }
    times.push(time);
    // Full from now on: drop the slack push leaves behind (a copy of exactly `limit` times).
    if (times.length === rule.limit) state.times = times.slice();
    return state;
  },
  standing(state, now, rule) {
    if (state === undefined || state.times.length === 0) return { remaining: rule.limit, resetMs: 0 };
    const used = inWindow(state, now, rule.windowMs);
    return { remaining: rule.limit - used, resetMs: used === 0 ? 0 : newest(state) + rule.windowMs - now };
  },
  expiresAt: (state, rule) => (state.times.length === 0 ? 0 : newest(state) + rule.windowMs),
  adjust(state, now, rule, chargedAt, _cost, delta) {
    if (delta > 0) {
      // Requests admitted after all: recorded now. The ring keeps only the last `limit`, so a debt
      // beyond a full ring is not remembered.
      for (let i = Math.min(delta, rule.limit); i > 0; i--) state = slidingWindow.consume(state, now, rule);
      return state;
    }
    if (state === undefined) return undefined;
    // A refund takes back the time it recorded, if the ring still holds it (else later admissions
    // have already pushed it out, and it no longer counts anyway).
    const size = state.times.length;
    for (let i = size - 1; i >= 0; i--) {
      const time = at(state, i);
      if (time < chargedAt) break;
      if (time !== chargedAt) continue;
      // Rebuilt in order, one short of full: it grows by push again.
      const times: number[] = [];
      for (let j = 0; j < size; j++) if (j !== i) times.push(at(state, j));
      return times.length === 0 ? undefined : { times, start: 0 };
    }
    return state;
  },
  tokens: slidingLog as Algorithm<unknown>,
};
