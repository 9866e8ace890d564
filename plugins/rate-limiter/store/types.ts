import type { Rule } from '../algorithms/types.ts';

/** One rule to check for one key. */
export interface RuleCheck {
  key: string;
  rule: Rule;
}

/** A rule's part in a decision; `remaining`/`resetMs` describe the key after the decision. */
export interface RuleResult {
  /** Milliseconds until this rule would admit (0 when it admits now). */
  retryAfterMs: number;
  remaining: number;
  resetMs: number;
}

/** All rules of one request decided together: admitted only if every rule admits. */
export interface Decision {
  allowed: boolean;
  /**
   * Refused because the store could not decide (its backend is down and the policy is "closed"), not
   * because of a limit. `results` is then empty.
   */
  unavailable?: boolean;
  /** When refused: milliseconds until every refusing rule would admit. */
  retryAfterMs: number;
  /** In the order of the checks; empty when the store decided without looking (see ResilientStore). */
  results: RuleResult[];
}

/**
 * Persists rate-limit state and decides a batch of checks atomically: a refused request charges no
 * rule. A store may answer synchronously (memory) or with a promise (network stores).
 */
export interface RateStore {
  decide(checks: readonly RuleCheck[], now: number): Decision | Promise<Decision>;
  /** Keys currently held (for bounds and metrics). */
  readonly size: number;
  close(): Promise<void>;
}
