import type { Algorithm } from './types.ts';

/** Count per window aligned to the epoch. Cheap, but admits up to 2x the limit across a boundary. */
export interface FixedWindowState {
  windowStart: number;
  count: number;
}

function windowStart(now: number, windowMs: number): number {
  return Math.floor(now / windowMs) * windowMs;
}

function countAt(state: FixedWindowState | undefined, start: number): number {
  return state !== undefined && state.windowStart === start ? state.count : 0;
}

export const fixedWindow: Algorithm<FixedWindowState> = {
  check(state, now, rule) {
    const start = windowStart(now, rule.windowMs);
    return countAt(state, start) < rule.limit ? 0 : start + rule.windowMs - now;
  },
  consume(state, now, rule) {
    const start = windowStart(now, rule.windowMs);
    const count = countAt(state, start) + 1;
    if (state === undefined) return { windowStart: start, count };
    state.windowStart = start;
    state.count = count;
    return state;
  },
  standing(state, now, rule) {
    const start = windowStart(now, rule.windowMs);
    const count = countAt(state, start);
    return { remaining: rule.limit - count, resetMs: count === 0 ? 0 : start + rule.windowMs - now };
  },
  expiresAt: (state, rule) => state.windowStart + rule.windowMs,
};
