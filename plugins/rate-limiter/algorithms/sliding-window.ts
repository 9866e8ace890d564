import type { Algorithm } from './types.ts';

/**
 * The exact sliding window: a ring of the times of the last `limit` admitted requests. A request is
 * admitted only when the oldest of those is at least one window old, so no window of length W ever
 * holds more than `limit` admissions, at any boundary. The ring starts small and grows to `limit`.
 */
export interface SlidingWindowState {
  times: Float64Array;
  /** Index of the oldest recorded time. */
  start: number;
  /** How many times are recorded (at most `limit`). */
  size: number;
}

const INITIAL_CAPACITY = 4;

function at(state: SlidingWindowState, i: number): number {
  return state.times[(state.start + i) % state.times.length]!;
}

function newest(state: SlidingWindowState): number {
  return at(state, state.size - 1);
}

/** How many recorded times are still inside the window (later than now - W). Times are sorted. */
function inWindow(state: SlidingWindowState, now: number, windowMs: number): number {
  const edge = now - windowMs;
  let lo = 0;
  let hi = state.size;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at(state, mid) <= edge) lo = mid + 1;
    else hi = mid;
  }
  return state.size - lo;
}

function grow(state: SlidingWindowState, limit: number): void {
  const times = new Float64Array(Math.min(limit, state.times.length * 2));
  for (let i = 0; i < state.size; i++) times[i] = at(state, i);
  state.times = times;
  state.start = 0;
}

export const slidingWindow: Algorithm<SlidingWindowState> = {
  check(state, now, rule) {
    if (state === undefined || state.size < rule.limit) return 0;
    // The ring is full: the oldest entry is the limit-th most recent admission.
    const wait = at(state, 0) + rule.windowMs - now;
    return wait <= 0 ? 0 : wait;
  },
  consume(state, now, rule) {
    if (state === undefined) {
      const times = new Float64Array(Math.min(rule.limit, INITIAL_CAPACITY));
      times[0] = now;
      return { times, start: 0, size: 1 };
    }
    // Keep the ring sorted even if the clock steps back.
    const time = state.size > 0 ? Math.max(now, newest(state)) : now;
    if (state.size >= rule.limit) {
      // Overwrite the oldest: only the last `limit` admissions matter.
      state.times[state.start] = time;
      state.start = (state.start + 1) % state.times.length;
      return state;
    }
    if (state.size === state.times.length) grow(state, rule.limit);
    state.times[(state.start + state.size) % state.times.length] = time;
    state.size++;
    return state;
  },
  standing(state, now, rule) {
    if (state === undefined || state.size === 0) return { remaining: rule.limit, resetMs: 0 };
    const used = inWindow(state, now, rule.windowMs);
    return { remaining: rule.limit - used, resetMs: used === 0 ? 0 : newest(state) + rule.windowMs - now };
  },
  expiresAt: (state, rule) => (state.size === 0 ? 0 : newest(state) + rule.windowMs),
};
