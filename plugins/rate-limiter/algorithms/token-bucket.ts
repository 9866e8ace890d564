import type { Algorithm } from './types.ts';

/**
 * GCRA, the token bucket as one number: the theoretical arrival time (TAT). Each request pushes the
 * TAT one emission interval (window / limit) forward; a request is admitted while the TAT is at most
 * one window ahead of now. Allows a burst of `limit`, then a steady `limit` per window.
 */
export interface TokenBucketState {
  tat: number;
}

// Emission intervals are fractional (60000/7 ms); compare with a little slack for float error.
const EPSILON = 1e-6;

export const tokenBucket: Algorithm<TokenBucketState> = {
  check(state, now, rule) {
    const interval = rule.windowMs / rule.limit;
    const tat = Math.max(state?.tat ?? now, now);
    const wait = tat + interval - rule.windowMs - now;
    return wait <= EPSILON ? 0 : Math.ceil(wait);
  },
  consume(state, now, rule) {
    const tat = Math.max(state?.tat ?? now, now) + rule.windowMs / rule.limit;
    if (state === undefined) return { tat };
    state.tat = tat;
    return state;
  },
  standing(state, now, rule) {
    const interval = rule.windowMs / rule.limit;
    const ahead = Math.max(state?.tat ?? now, now) - now;
    return {
      remaining: Math.max(0, Math.floor((rule.windowMs - ahead) / interval + EPSILON)),
      resetMs: Math.max(0, Math.ceil(ahead - EPSILON)),
    };
  },
  expiresAt: (state) => state.tat,
};
