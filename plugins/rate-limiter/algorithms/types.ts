/** What an algorithm needs of a rule: at most `limit` requests per `windowMs`. */
export interface Rule {
  limit: number;
  windowMs: number;
}

/** How a key stands after a decision: what the limiter will do next, in the units headers use. */
export interface Standing {
  /** Requests that would be admitted right now, one after another. */
  remaining: number;
  /** Milliseconds until the full limit is available again (0 when it already is). */
  resetMs: number;
}

/**
 * A rate-limiting algorithm as pure functions of (state, now, rule). `check` decides without
 * changing anything, so several rules can be checked before any is charged; `consume` charges one
 * request (and may reuse the state's storage). `undefined` state means "nothing recorded".
 */
export interface Algorithm<S> {
  /** 0 when a request at `now` is admitted, else the milliseconds until one would be. */
  check(state: S | undefined, now: number, rule: Rule): number;
  consume(state: S | undefined, now: number, rule: Rule): S;
  standing(state: S | undefined, now: number, rule: Rule): Standing;
  /** From this time on the state is equivalent to `undefined` and can be dropped. */
  expiresAt(state: S, rule: Rule): number;
}

export const ALGORITHM_NAMES = ['sliding_window', 'fixed_window', 'token_bucket'] as const;
export type AlgorithmName = (typeof ALGORITHM_NAMES)[number];
