/**
 * What an algorithm needs of a rule: at most `limit` requests per `windowMs`, or, for a tokens rule,
 * at most `limit` tokens per `windowMs` (each check then charges its own cost).
 */
export interface Rule {
  limit: number;
  windowMs: number;
  /** What `limit` counts; requests when absent. */
  unit?: 'requests' | 'tokens';
  /**
   * A window that resets on the calendar (a day or a month in a time zone): counted per period by
   * the calendar window, whatever the configured algorithm; `windowMs` is then the nominal length
   * (a day, 31 days). Absent for every other rule.
   */
  calendar?: Calendar;
}

/** One calendar period: from its first instant (`start`, ms) to the next period's (`end`). */
export interface CalendarPeriod {
  start: number;
  end: number;
}

/** The periods of a calendar window: which one an instant falls in. */
export interface Calendar {
  periodAt(t: number): CalendarPeriod;
  /**
   * The boundaries of the period at `t` and of its neighbours: [previous start, start, end, next
   * end]. What a store that cannot compute periods itself (the Redis script) is given.
   */
  around(t: number): readonly number[];
}

/** How a key stands after a decision: what the limiter will do next, in the units headers use. */
export interface Standing {
  /** Requests (tokens, for a tokens rule) that would be admitted right now, one after another. */
  remaining: number;
  /** Milliseconds until the full limit is available again (0 when it already is). */
  resetMs: number;
}

/**
 * A rate-limiting algorithm as pure functions of (state, now, rule). `check` decides without
 * changing anything, so several rules can be checked before any is charged; `consume` charges
 * (and may reuse the state's storage). `undefined` state means "nothing recorded".
 *
 * `cost` is what one check charges: 1 for a requests rule (callers leave it out), a positive integer
 * no greater than `rule.limit` for a tokens rule (a larger one could never be admitted; the stores
 * refuse it before asking the algorithm).
 */
export interface Algorithm<S> {
  /** 0 when a charge of `cost` at `now` is admitted, else the milliseconds until it would be. */
  check(state: S | undefined, now: number, rule: Rule, cost?: number): number;
  consume(state: S | undefined, now: number, rule: Rule, cost?: number): S;
  standing(state: S | undefined, now: number, rule: Rule): Standing;
  /** From this time on the state is equivalent to `undefined` and can be dropped. */
  expiresAt(state: S, rule: Rule): number;
  /**
   * Makes a charge of `cost` made at time `at` count as `cost + delta` instead, at `now`: a refund
   * when delta is -cost, a later charge (which may put the key in debt) when delta is positive. delta
   * is never 0 and never below -cost. A charge that has already left the state (expired, evicted,
   * window rolled) is not refunded; a positive delta is then charged at `now`. Returns the new state,
   * or undefined when what is left is equivalent to nothing.
   */
  adjust(state: S | undefined, now: number, rule: Rule, at: number, cost: number, delta: number): S | undefined;
  /**
   * The algorithm that counts tokens rules, when this one cannot weigh its charges (the sliding
   * window's ring holds times only). Absent: this one counts both.
   */
  tokens?: Algorithm<unknown>;
}

export const ALGORITHM_NAMES = ['sliding_window', 'fixed_window', 'token_bucket'] as const;
export type AlgorithmName = (typeof ALGORITHM_NAMES)[number];
