import { counterFor, type Algorithm, type Rule } from '../algorithms/index.ts';
import { costOf, type Decision, type RuleCheck, type RuleResult } from '../store/types.ts';

/**
 * The state of one request's keys as Redis held them at one instant, read in one transaction: what
 * the refusal cache answers from. Evaluating it runs the same algorithm the Lua script mirrors (the
 * memory store's), so an answer from it is the answer Redis would give, as long as the keys have not
 * changed since. Why they cannot have (when the answer is a refusal) is what `evaluate` checks.
 *
 * Any state that refuses until a known time fits: a new kind of key (a block: "refused until T",
 * charged by nobody while it lasts) joins with a reader in store/redis-state.ts and a case here that
 * blocks while the snapshot's time is before T.
 */
export interface Snapshot {
  /** The keys (without the Redis prefix) and the rules they were read for, in the request's order. */
  readonly keys: readonly string[];
  readonly rules: readonly Rule[];
  readonly states: readonly unknown[];
  /**
   * The Redis time (ms) of a local time `t`, as an upper bound: evaluating a little late only makes
   * the snapshot more likely to admit, and an admission is never answered from the snapshot.
   */
  serverTime(t: number): number;
  /** Local time after which the snapshot is not used, however it evaluates (the bound on staleness). */
  readonly expiresAt: number;
}

/**
 * Whether `snapshot` holds exactly these keys, read for these rules (a reload may have changed a
 * limit; a calendar window is the same only as the same compiled calendar).
 */
export function covers(snapshot: Snapshot, checks: readonly RuleCheck[]): boolean {
  if (snapshot.keys.length !== checks.length) return false;
  for (let i = 0; i < checks.length; i++) {
    const { key, rule } = checks[i]!;
    const read = snapshot.rules[i]!;
    if (
      snapshot.keys[i] !== key ||
      read.limit !== rule.limit ||
      read.windowMs !== rule.windowMs ||
      (read.unit ?? 'requests') !== (rule.unit ?? 'requests') ||
      read.calendar !== rule.calendar
    ) {
      return false;
    }
  }
  return true;
}

/**
 * What a snapshot says of a request: the refusal Redis would answer, or why it cannot say ('admits':
 * no rule blocks, so Redis may admit; 'shared': a key others charge still admits).
 */
export type Verdict = Decision | 'admits' | 'shared';

/**
 * The refusal Redis would answer for `checks` at local time `now`, worked out from `snapshot`, or
 * why the snapshot cannot say (the caller then asks Redis).
 *
 * A snapshot says what Redis holds now only for keys nobody can have charged since it was read. It
 * answers when:
 * - some check refuses whatever the request costs: a requests rule refusing, or a tokens rule
 *   refusing even a charge of 1 ("blocking"). Waits only shrink as time passes on unchanged state, so
 *   that check has refused every request with these keys since the read, and none of the keys the
 *   request shares with nobody (`chargedByOthers` false: a user's own windows and token budgets) has
 *   been charged since; a blocking key itself cannot be charged by anyone;
 * - every check whose key others also charge (a tenant's) is itself blocking: one that admits may
 *   have been charged by another user since, and its figures would be stale.
 * What no refusal protects against (a refund, an operator's reset, another config charging the same
 * keys) is the cache's to handle: it drops snapshots on those (see refusal-cache.ts) and never keeps
 * one past `expiresAt`.
 */
export function evaluate(
  snapshot: Snapshot,
  checks: readonly RuleCheck[],
  now: number,
  algorithm: Algorithm<unknown>,
  chargedByOthers: (check: RuleCheck) => boolean,
): Verdict {
  const at = snapshot.serverTime(now);
  const results: RuleResult[] = new Array(checks.length);
  let retryAfterMs = 0;
  let blocking = false;
  for (let i = 0; i < checks.length; i++) {
    const check = checks[i]!;
    const { rule } = check;
    const state = snapshot.states[i];
    const counted = counterFor(algorithm, rule);
    const tokens = rule.unit === 'tokens';
    const cost = tokens ? costOf(check) : 1;
    const tooLarge = cost > rule.limit;
    // As decide.lua answers: whole milliseconds, rounded up.
    const wait = Math.ceil(tooLarge ? rule.windowMs : counted.check(state, at, rule, cost));
    const blocks = tokens ? counted.check(state, at, rule, 1) > 0 : wait > 0;
    if (blocks) blocking = true;
    else if (chargedByOthers(check)) return 'shared';
    const standing = counted.standing(state, at, rule);
    const result: RuleResult = { retryAfterMs: wait, remaining: Math.max(0, standing.remaining), resetMs: Math.ceil(standing.resetMs) };
    if (tooLarge) result.tooLarge = true;
    results[i] = result;
    if (wait > retryAfterMs) retryAfterMs = wait;
  }
  return blocking ? { allowed: false, retryAfterMs, results } : 'admits';
}
