import type { Algorithm } from './types.ts';

/**
 * The exact sliding window: a ring of the times of the last `limit` admitted requests. A request is
 * admitted only when the oldest of those is at least one window old, so no window of length W ever
 * holds more than `limit` admissions, at any boundary.
 *
 * The state is one plain array of numbers, which V8 stores as unboxed doubles (8 bytes each): first the
 * ring's start (the index of the oldest time), then the times. One object per key, where a Float64Array
 * would be three (and slow to allocate) and a { times, start } record two: on a busy store each object
 * a decision reads is a likely cache miss. The ring grows by push until it holds `limit` times, is
 * then copied to exactly that size, and from then on the oldest time is overwritten in place.
 */
export type SlidingWindowState = number[];

/** How many times are recorded (at most `limit`). */
function sizeOf(state: SlidingWindowState): number {
  return state.length - 1;
}

/** The i-th oldest recorded time (i < size). */
function at(state: SlidingWindowState, i: number): number {
  const size = state.length - 1;
  const j = state[0]! + i;
  return state[1 + (j < size ? j : j - size)]!;
}

function newest(state: SlidingWindowState): number {
  const start = state[0]!;
  return state[start === 0 ? state.length - 1 : start]!;
}

/** How many recorded times are still inside the window (later than now - W). Times are sorted. */
function inWindow(state: SlidingWindowState, now: number, windowMs: number): number {
  const edge = now - windowMs;
  const size = sizeOf(state);
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
    if (state === undefined || sizeOf(state) < rule.limit) return 0;
    // The ring is full: the oldest entry is the limit-th most recent admission.
    const wait = at(state, 0) + rule.windowMs - now;
    return wait <= 0 ? 0 : wait;
  },
  consume(state, now, rule) {
    if (state === undefined) return [0, now];
    const size = sizeOf(state);
    // Keep the ring sorted even if the clock steps back.
    const time = size > 0 ? Math.max(now, newest(state)) : now;
    if (size >= rule.limit) {
      // Overwrite the oldest: only the last `limit` admissions matter.
      const start = state[0]!;
      state[1 + start] = time;
      state[0] = start + 1 === size ? 0 : start + 1;
      return state;
    }
    state.push(time);
    // Full from now on: drop the slack push leaves behind (a copy of exactly `limit` times).
    return size + 1 === rule.limit ? state.slice() : state;
  },
  standing(state, now, rule) {
    if (state === undefined || sizeOf(state) === 0) return { remaining: rule.limit, resetMs: 0 };
    const used = inWindow(state, now, rule.windowMs);
    return { remaining: rule.limit - used, resetMs: used === 0 ? 0 : newest(state) + rule.windowMs - now };
  },
  expiresAt: (state, rule) => (sizeOf(state) === 0 ? 0 : newest(state) + rule.windowMs),
};
