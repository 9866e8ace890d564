import { ExpiringMap } from '../../../src/util/expiring-map.ts';
import type { Algorithm, Rule } from '../algorithms/types.ts';
import type { Decision, RateStore, RuleCheck, RuleResult } from './types.ts';

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
 */
export class MemoryStore implements RateStore {
  private readonly entries: ExpiringMap<Entry>;
  /** Scratch for many-rule decisions: each check's entry and wait, reused from call to call. */
  private readonly found: (Entry | undefined)[] = [];
  private readonly waits: number[] = [];

  constructor(
    private readonly algorithm: Algorithm<unknown>,
    maxKeys: number,
  ) {
    this.entries = new ExpiringMap<Entry>(maxKeys);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Keys dropped while still holding live state because the store was full. */
  get evictedLive(): number {
    return this.entries.evictedLive;
  }

  decide(checks: readonly RuleCheck[], now: number): Decision {
    if (checks.length === 1) return this.decideOne(checks[0]!, now);
    const { algorithm, found, waits } = this;
    let retryAfterMs = 0;
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i]!;
      const entry = this.entries.get(check.key, now);
      found[i] = entry;
      const wait = algorithm.check(entry?.state, now, check.rule);
      waits[i] = wait;
      if (wait > retryAfterMs) retryAfterMs = wait;
    }
    const allowed = retryAfterMs === 0;
    const results: RuleResult[] = new Array(checks.length);
    for (let i = 0; i < checks.length; i++) {
      const { key, rule } = checks[i]!;
      let entry = found[i];
      found[i] = undefined;
      if (allowed) entry = this.charge(key, entry, now, rule);
      results[i] = this.result(waits[i]!, entry, now, rule);
    }
    return { allowed, retryAfterMs, results };
  }

  private decideOne({ key, rule }: RuleCheck, now: number): Decision {
    let entry = this.entries.get(key, now);
    const wait = this.algorithm.check(entry?.state, now, rule);
    if (wait === 0) entry = this.charge(key, entry, now, rule);
    return { allowed: wait === 0, retryAfterMs: wait, results: [this.result(wait, entry, now, rule)] };
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

  /** How each key stands, charging nothing (the operator's view). */
  peek(checks: readonly RuleCheck[], now: number): RuleResult[] {
    return checks.map(({ key, rule }) => this.result(0, this.entries.get(key, now), now, rule));
  }

  /** Drops every key `owns` accepts; returns how many. */
  forget(owns: (key: string) => boolean): number {
    return this.entries.deleteWhere(owns);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
