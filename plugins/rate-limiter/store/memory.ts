import { systemClock, type Clock, ExpiringMap } from '../../../src/plugin-sdk.ts';
import { calendarWindow, counterFor } from '../algorithms/index.ts';
import type { Algorithm, Rule } from '../algorithms/types.ts';
import { MemoryBlocks } from '../blocks/memory.ts';
import type { BlockCheck, BlockStanding } from '../blocks/types.ts';
import { costOf, deltaOf, type Decision, type RateStore, type RuleCheck, type RuleResult } from './types.ts';

/**
 * Whether a rule is decided apart from the configured algorithm's requests path, with a cost per
 * check and an algorithm of its own: tokens rules, and calendar windows (requests or tokens).
 */
function weighed(rule: Rule): boolean {
  return rule.unit === 'tokens' || rule.calendar !== undefined;
}

interface Entry {
  state: unknown;
  expiresAt: number;
  used: boolean;
}

/**
 * One process's state in a bounded map. A decision is one synchronous step (check every rule, then
 * charge every rule), so no other request can interleave between reading and writing a key. It is
 * on every message's path: beyond the decision it returns, it allocates nothing (the one-rule case
 * has its own path, and the entries a many-rule decision looks at go in arrays it reuses).
 *
 * Requests rules (cost 1) are counted by the configured algorithm; tokens rules by its tokens
 * variant (see Algorithm.tokens), chosen per rule by one look at `rule.unit`, so the requests path
 * pays nothing for costs. A decision's `charge` is the time it was made (and, if admitted, charged)
 * at, which is what adjust() needs to find the charge again.
 */
export class MemoryStore implements RateStore {
  private readonly entries: ExpiringMap<Entry>;
  /** Counts tokens rules. */
  private readonly tokens: Algorithm<unknown>;
  /** Scratch for many-rule decisions: each check's entry and wait, reused from call to call. */
  private readonly found: (Entry | undefined)[] = [];
  private readonly waits: number[] = [];
  /** Escalating blocks of the subjects whose checks carry one (see blocks/). */
  readonly blocks: MemoryBlocks;

  constructor(
    private readonly algorithm: Algorithm<unknown>,
    maxKeys: number,
    /** The time of an adjust() called without one. */
    private readonly clock: Clock = systemClock,
  ) {
    this.entries = new ExpiringMap<Entry>(maxKeys);
    this.tokens = algorithm.tokens ?? algorithm;
    this.blocks = new MemoryBlocks(maxKeys);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Keys dropped while still holding live state because the store was full. */
  get evictedLive(): number {
    return this.entries.evictedLive;
  }

  decide(checks: readonly RuleCheck[], now: number): Decision {
    for (let i = 0; i < checks.length; i++) if (checks[i]!.block !== undefined) return this.blocks.decide(checks, now, this.decideRules);
    return this.decideRules(checks, now);
  }

  /** The rules alone, blocks aside. */
  private readonly decideRules = (checks: readonly RuleCheck[], now: number): Decision => {
    if (checks.length === 1) return this.decideOne(checks[0]!, now);
    const { algorithm, found, waits } = this;
    let retryAfterMs = 0;
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i]!;
      const entry = this.entries.get(check.key, now);
      found[i] = entry;
      const wait = weighed(check.rule) ? this.checkTokens(entry, now, check) : algorithm.check(entry?.state, now, check.rule);
      waits[i] = wait;
      if (wait > retryAfterMs) retryAfterMs = wait;
    }
    const allowed = retryAfterMs === 0;
    const results: RuleResult[] = new Array(checks.length);
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i]!;
      let entry = found[i];
      found[i] = undefined;
      if (weighed(check.rule)) {
        results[i] = this.settleTokens(allowed, waits[i]!, entry, now, check);
        continue;
      }
      if (allowed) entry = this.charge(check.key, entry, now, check.rule);
      results[i] = this.result(waits[i]!, entry, now, check.rule);
    }
    return { allowed, retryAfterMs, results, charge: now };
  };

  private decideOne(check: RuleCheck, now: number): Decision {
    const { key, rule } = check;
    if (weighed(rule)) {
      const entry = this.entries.get(key, now);
      const wait = this.checkTokens(entry, now, check);
      const result = this.settleTokens(wait === 0, wait, entry, now, check);
      return { allowed: wait === 0, retryAfterMs: wait, results: [result], charge: now };
    }
    let entry = this.entries.get(key, now);
    const wait = this.algorithm.check(entry?.state, now, rule);
    if (wait === 0) entry = this.charge(key, entry, now, rule);
    // `charge` on every decision, refused too (adjust() ignores those): a conditional value here
    // measurably slows the hot path.
    return { allowed: wait === 0, retryAfterMs: wait, results: [this.result(wait, entry, now, rule)], charge: now };
  }

  /** Charges one request to `key` (creating its entry when it has none); returns the entry. */
  private charge(key: string, entry: Entry | undefined, now: number, rule: Rule): Entry {
    const { algorithm } = this;
    const state = algorithm.consume(entry?.state, now, rule);
    if (entry === undefined) {
      entry = { state, expiresAt: algorithm.expiresAt(state, rule), used: false };
      this.entries.set(key, entry, now);
    } else {
      entry.state = state;
      entry.expiresAt = algorithm.expiresAt(state, rule);
      this.entries.touch(key, entry);
    }
    return entry;
  }

  private result(retryAfterMs: number, entry: Entry | undefined, now: number, rule: Rule): RuleResult {
    const standing = this.algorithm.standing(entry?.state, now, rule);
    return { retryAfterMs, remaining: standing.remaining, resetMs: standing.resetMs };
  }

  /*
   * Tokens rules (and calendar windows): the same steps as charge() and result() above, by the tokens
   * algorithm (the calendar window's) and with the check's cost. Kept apart so that the requests path
   * stays exactly as lean as it was.
   */

  /** The algorithm of a weighed rule. */
  private weigher(rule: Rule): Algorithm<unknown> {
    return rule.calendar !== undefined ? (calendarWindow as Algorithm<unknown>) : this.tokens;
  }

  /** A tokens check's wait; a cost no window could ever hold waits one window (see RuleResult.tooLarge). */
  private checkTokens(entry: Entry | undefined, now: number, check: RuleCheck): number {
    const cost = costOf(check);
    if (cost > check.rule.limit) return check.rule.windowMs;
    return this.weigher(check.rule).check(entry?.state, now, check.rule, cost);
  }

  /** Charges a tokens check when `allowed`; its result either way. */
  private settleTokens(allowed: boolean, retryAfterMs: number, entry: Entry | undefined, now: number, check: RuleCheck): RuleResult {
    const { key, rule } = check;
    const tokens = this.weigher(rule);
    const cost = costOf(check);
    if (allowed) {
      const state = tokens.consume(entry?.state, now, rule, cost);
      if (entry === undefined) {
        entry = { state, expiresAt: tokens.expiresAt(state, rule), used: false };
        this.entries.set(key, entry, now);
      } else {
        entry.state = state;
        entry.expiresAt = tokens.expiresAt(state, rule);
        this.entries.touch(key, entry);
      }
    }
    const standing = tokens.standing(entry?.state, now, rule);
    const result: RuleResult = { retryAfterMs, remaining: standing.remaining, resetMs: standing.resetMs };
    if (cost > rule.limit) result.tooLarge = true;
    return result;
  }

  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number = this.clock.now()): void {
    const at = decision.charge;
    if (!decision.allowed || typeof at !== 'number') return;
    for (let i = 0; i < checks.length; i++) {
      const { key, rule } = checks[i]!;
      const tokens = rule.unit === 'tokens';
      const cost = tokens ? costOf(checks[i]!) : 1;
      const delta = deltaOf(deltas[i], cost);
      if (delta === 0) continue;
      const algorithm = counterFor(this.algorithm, rule);
      const entry = this.entries.get(key, now);
      const state = algorithm.adjust(entry?.state, now, rule, at, cost, delta);
      if (state === undefined) {
        if (entry !== undefined) this.entries.delete(key);
      } else if (entry === undefined) {
        this.entries.set(key, { state, expiresAt: algorithm.expiresAt(state, rule), used: false }, now);
      } else {
        entry.state = state;
        entry.expiresAt = algorithm.expiresAt(state, rule);
      }
    }
  }

  /** How each key stands, charging nothing (the operator's view). */
  peek(checks: readonly RuleCheck[], now: number): RuleResult[] {
    return checks.map(({ key, rule }) => {
      const standing = counterFor(this.algorithm, rule).standing(this.entries.get(key, now)?.state, now, rule);
      return { retryAfterMs: 0, remaining: standing.remaining, resetMs: standing.resetMs };
    });
  }

  /** How each subject's block stands, charging nothing. */
  peekBlocks(blocks: readonly BlockCheck[], now: number): BlockStanding[] {
    return this.blocks.peek(blocks, now);
  }

  /** Drops every key (rate state and block records) `owns` accepts; returns how many. */
  forget(owns: (key: string) => boolean): number {
    return this.entries.deleteWhere(owns) + this.blocks.forget(owns);
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.blocks.clear();
  }
}
