import type { Algorithm } from './types.ts';

/** Count per window aligned to the epoch. Cheap, but admits up to 2x the limit across a boundary. */
export interface FixedWindowState {
  /**
   * Which window (epoch time / window length, rounded down): a small integer, which V8 stores inline,
   * where the window's start time would need a boxed double (16 bytes more per key).
   */
  window: number;
  count: number;
}

function windowOf(now: number, windowMs: number): number {
  return Math.floor(now / windowMs);
}

function countIn(state: FixedWindowState | undefined, window: number): number {
  return state !== undefined && state.window === window ? state.count : 0;
}

export const fixedWindow: Algorithm<FixedWindowState> = {
  check(state, now, rule) {
    const window = windowOf(now, rule.windowMs);
    return countIn(state, window) < rule.limit ? 0 : (window + 1) * rule.windowMs - now;
  },
  consume(state, now, rule) {
    const window = windowOf(now, rule.windowMs);
    const count = countIn(state, window) + 1;
    if (state === undefined) return { window, count };
    state.window = window;
    state.count = count;
    return state;
  },
  standing(state, now, rule) {
    const window = windowOf(now, rule.windowMs);
    const count = countIn(state, window);
    return { remaining: rule.limit - count, resetMs: count === 0 ? 0 : (window + 1) * rule.windowMs - now };
  },
  expiresAt: (state, rule) => (state.window + 1) * rule.windowMs,
};
