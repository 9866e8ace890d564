import type { Algorithm, Rule } from './types.ts';

/**
 * GCRA, the token bucket as one number: the theoretical arrival time (TAT). Each request (token)
 * pushes the TAT one emission interval (window / limit) forward; a charge is admitted while the TAT
 * it leaves is at most one window ahead of now. Allows a burst of `limit`, then a steady `limit` per
 * window.
 */
/** The TAT itself: a bare number is the smallest state a key can have (no object around it). */
export type TokenBucketState = number;

// Emission intervals are fractional (60000/7 ms); compare with a little slack for float error.
const EPSILON = 1e-6;
// A double holding today's epoch milliseconds (below 2^42, i.e. until 2109) resolves only 2^-11 ms, and
// every step of a burst rounds the TAT the same way: give each of the `limit` steps that much slack,
// but never half an interval, so the slack cannot admit an extra request.
const TIME_RESOLUTION = 2 ** -11;

function slack(rule: Rule, interval: number): number {
  return EPSILON + Math.min(rule.limit * TIME_RESOLUTION, interval / 2);
}

export const tokenBucket: Algorithm<TokenBucketState> = {
  check(state, now, rule, cost = 1) {
    const interval = rule.windowMs / rule.limit;
    const ahead = Math.max(state ?? now, now) - now;
    const wait = ahead + cost * interval - rule.windowMs;
    const tolerance = slack(rule, interval);
    return wait <= tolerance ? 0 : Math.ceil(wait - tolerance);
  },
  consume(state, now, rule, cost = 1) {
    return Math.max(state ?? now, now) + cost * (rule.windowMs / rule.limit);
  },
  standing(state, now, rule) {
    const interval = rule.windowMs / rule.limit;
    const ahead = Math.max(state ?? now, now) - now;
    const tolerance = slack(rule, interval);
    return {
      remaining: Math.max(0, Math.floor((rule.windowMs - ahead + tolerance) / interval)),
      resetMs: Math.max(0, Math.ceil(ahead - tolerance)),
    };
  },
  expiresAt: (state) => state,
  adjust(state, now, rule, _at, _cost, delta) {
    const interval = rule.windowMs / rule.limit;
    // More spent: pushed onto the TAT like a charge made now (past the window ahead: a debt).
    if (delta > 0) return Math.max(state ?? now, now) + delta * interval;
    // A refund gives back what has not refilled already: the TAT moves back, never before now.
    if (state === undefined || state <= now) return undefined;
    const tat = Math.max(now, state + delta * interval);
    return tat > now ? tat : undefined;
  },
};
