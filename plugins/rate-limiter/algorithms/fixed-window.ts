import type { Algorithm } from './types.ts';

/** Count per window aligned to the epoch. Cheap, but admits up to 2x the limit across a boundary. */
export interface FixedWindowState {
  /**
   * Which window (epoch time / window length, rounded down): a small integer, which V8 stores inline,
   * where the window's start time would need a boxed double (16 bytes more per key).
   */
  window: number;
  /** Requests (tokens) charged in that window; above the limit when a later charge put it in debt. */
  count: number;
}

function windowOf(now: number, windowMs: number): number {
  return Math.floor(now / windowMs);
}

function countIn(state: FixedWindowState | undefined, window: number): number {
  return state !== undefined && state.window === window ? state.count : 0;
}

export const fixedWindow: Algorithm<FixedWindowState> = {
  check(state, now, rule, cost = 1) {
    const window = windowOf(now, rule.windowMs);
    return countIn(state, window) + cost <= rule.limit ? 0 : (window + 1) * rule.windowMs - now;
  },
  consume(state, now, rule, cost = 1) {
    const window = windowOf(now, rule.windowMs);
    const count = countIn(state, window) + cost;
    if (state === undefined) return { window, count };
    state.window = window;
    state.count = count;
    return state;
  },
  standing(state, now, rule) {
    const window = windowOf(now, rule.windowMs);
    const count = countIn(state, window);
    return { remaining: Math.max(0, rule.limit - count), resetMs: count === 0 ? 0 : (window + 1) * rule.windowMs - now };
  },
  expiresAt: (state, rule) => (state.window + 1) * rule.windowMs,
  adjust(state, now, rule, at, _cost, delta) {
    // More spent: charged to the current window, whichever window the charge itself fell in.
    if (delta > 0) return fixedWindow.consume(state, now, rule, delta);
    const window = windowOf(now, rule.windowMs);
    // A refund only counts while the charge's window is the current one; a rolled window is gone.
    if (state === undefined || state.window !== window || windowOf(at, rule.windowMs) !== window) return state;
    state.count = Math.max(0, state.count + delta);
    return state.count === 0 ? undefined : state;
  },
};
