import { ExpiringMap } from '../../../src/util/expiring-map.ts';
import type { Algorithm } from '../algorithms/types.ts';
import type { Decision, RateStore, RuleCheck, RuleResult } from './types.ts';

interface Entry {
  state: unknown;
  expiresAt: number;
}

/**
 * One process's state in a bounded map. A decision is one synchronous step (check every rule, then
 * charge every rule), so no other request can interleave between reading and writing a key.
 */
export class MemoryStore implements RateStore {
  private readonly entries: ExpiringMap<Entry>;

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
    const { algorithm } = this;
    const found: (Entry | undefined)[] = new Array(checks.length);
    const waits: number[] = new Array(checks.length);
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
      if (allowed) {
        const state = algorithm.consume(entry?.state, now, rule);
        if (entry === undefined) {
          entry = { state, expiresAt: algorithm.expiresAt(state, rule) };
          this.entries.set(key, entry, now);
        } else {
          entry.state = state;
          entry.expiresAt = algorithm.expiresAt(state, rule);
          this.entries.touch(key, entry);
        }
      }
      const standing = algorithm.standing(entry?.state, now, rule);
      results[i] = { retryAfterMs: waits[i]!, remaining: standing.remaining, resetMs: standing.resetMs };
    }
    return { allowed, retryAfterMs, results };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
