import type { Rule } from '../algorithms/types.ts';
import type { BlockCheck, BlockVerdict } from '../blocks/types.ts';

/** One rule to check for one key. */
export interface RuleCheck {
  key: string;
  rule: Rule;
  /**
   * What this check charges, in the rule's unit: a positive integer, 1 when absent. A requests rule
   * always charges 1 (its cost is ignored). A cost above `rule.limit` can never be admitted: it is
   * refused with `tooLarge` and charges nothing.
   */
  cost?: number;
  /** The subject's block this check belongs to: a refusal by it counts towards the block (see blocks/). */
  block?: BlockCheck;
}

/** A rule's part in a decision; `remaining`/`resetMs` describe the key after the decision. */
export interface RuleResult {
  /** Milliseconds until this rule would admit (0 when it admits now). */
  retryAfterMs: number;
  remaining: number;
  resetMs: number;
  /**
   * The check's cost is above the rule's limit, so no wait would ever admit it; `retryAfterMs` is
   * then the rule's window (a finite figure for headers), not a promise. Absent otherwise.
   */
  tooLarge?: boolean;
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
  /**
   * Opaque: what the store that decided needs in order to adjust this decision later (see
   * RateStore.adjust). The memory and Redis stores put the time they decided, and if admitted
   * charged, at (for Redis, the server's TIME); the resilient store wraps that with which of its
   * stores decided. Absent after a blind decision. Only an admitted decision is ever adjusted.
   */
  charge?: unknown;
  /**
   * Refused by an escalating block: one in force (then nothing was read or charged, and `results` is
   * empty), or one this very refusal started. `retryAfterMs` is then the block's end.
   */
  blocked?: BlockVerdict;
}

/**
 * Persists rate-limit state and decides a batch of checks atomically: a refused request charges no
 * rule. A store may answer synchronously (memory) or with a promise (network stores).
 */
export interface RateStore {
  decide(checks: readonly RuleCheck[], now: number): Decision | Promise<Decision>;
  /**
   * Changes what an admitted decision charged. `decision` is what decide() returned for these same
   * `checks`; `deltas[i]` makes check i's charge of `cost` count as `cost + delta`: -cost refunds it
   * entirely (as if it had never been charged), a positive delta charges more (allowed beyond the
   * limit: the key goes into debt and later requests wait), 0 leaves it alone. A charge that has
   * already left the key's state (window passed, key evicted) is not refunded; a positive delta is
   * then charged now. Adjust a decision once. A refused or blind decision is left alone.
   *
   * `now` is the caller's time, as for decide(): the memory store falls back to its clock, the Redis
   * store uses the server's TIME unless it was built with timeSource 'caller'. A network store's
   * failure rejects the promise it returns (it never throws).
   */
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now?: number): void | Promise<void>;
  /** Keys currently held (for bounds and metrics). */
  readonly size: number;
  close(): Promise<void>;
}

/** A tokens check's cost, checked: a positive integer (1 when absent). */
export function costOf(check: RuleCheck): number {
  const cost = check.cost ?? 1;
  if (!Number.isInteger(cost) || cost < 1) throw new RangeError(`a check's cost must be a positive integer, got ${cost}`);
  return cost;
}

/** An adjustment, checked: an integer, never refunding more than was charged. */
export function deltaOf(delta: number | undefined, cost: number): number {
  if (delta === undefined || delta === 0) return 0;
  if (!Number.isInteger(delta)) throw new RangeError(`an adjustment must be an integer, got ${delta}`);
  return delta < -cost ? -cost : delta;
}
