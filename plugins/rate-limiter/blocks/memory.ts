import { ExpiringMap } from '../../../src/plugin-sdk.ts';
import type { Decision, RuleCheck } from '../store/types.ts';
import { blockedFor, expiresAt, standing, strike } from './escalation.ts';
import type { BlockCheck, BlockStanding, BlockState, BlockVerdict } from './types.ts';

interface Entry extends BlockState {
  expiresAt: number;
  used: boolean;
}

const NO_BLOCKS: readonly BlockCheck[] = Object.freeze([]);

/** The distinct blocks of a request's checks, in the order they first appear (none: one shared empty list). */
export function blocksOf(checks: readonly RuleCheck[]): readonly BlockCheck[] {
  let blocks: BlockCheck[] | undefined;
  for (const check of checks) {
    const block = check.block;
    if (block === undefined) continue;
    if (blocks === undefined) blocks = [block];
    else if (!blocks.some((b) => b.key === block.key)) blocks.push(block);
  }
  return blocks ?? NO_BLOCKS;
}

/** The verdict with the longer block (the one a client must wait out). */
function longer(a: BlockVerdict | undefined, b: BlockVerdict): BlockVerdict {
  return a === undefined || b.retryAfterMs > a.retryAfterMs ? b : a;
}

/**
 * One process's block records, beside the memory store's rate state and decided in the same
 * synchronous step: a blocked subject is refused before any rule is read (nothing charged), and a
 * refusal of a subject that is not blocked is counted towards its next block.
 */
export class MemoryBlocks {
  private readonly records: ExpiringMap<Entry>;

  constructor(maxKeys: number) {
    this.records = new ExpiringMap<Entry>(maxKeys);
  }

  /** `decideRules` decides the checks when no block refuses them; its refusal then counts as a strike. */
  decide(checks: readonly RuleCheck[], now: number, decideRules: (checks: readonly RuleCheck[], now: number) => Decision): Decision {
    const blocks = blocksOf(checks);
    let verdict: BlockVerdict | undefined;
    for (const block of blocks) {
      const entry = this.records.get(block.key, now);
      const wait = blockedFor(entry, now);
      if (wait > 0) verdict = longer(verdict, { block, retryAfterMs: wait, level: entry!.level, started: false });
    }
    if (verdict !== undefined) return { allowed: false, retryAfterMs: verdict.retryAfterMs, results: [], charge: now, blocked: verdict };
    const decision = decideRules(checks, now);
    if (decision.allowed || decision.results.length === 0) return decision;
    for (const block of blocks) {
      const wait = refusedFor(checks, decision, block.key);
      if (wait === 0) continue;
      const started = this.strike(block, now, wait);
      if (started !== undefined) verdict = longer(verdict, started);
    }
    if (verdict !== undefined) {
      decision.blocked = verdict;
      if (verdict.retryAfterMs > decision.retryAfterMs) decision.retryAfterMs = verdict.retryAfterMs;
    }
    return decision;
  }

  /** Counts one refusal of `block`'s subject; the verdict when it starts a block. */
  private strike(block: BlockCheck, now: number, waitMs: number): BlockVerdict | undefined {
    const entry = this.records.get(block.key, now);
    const next = strike(entry, now, block.policy, waitMs);
    const state = next.state;
    const ends = expiresAt(state, block.policy);
    if (entry === undefined) {
      this.records.set(block.key, { ...state, expiresAt: ends, used: false }, now);
    } else {
      entry.strikes = state.strikes;
      entry.strikesUntil = state.strikesUntil;
      entry.level = state.level;
      entry.until = state.until;
      entry.expiresAt = ends;
      this.records.touch(block.key, entry);
    }
    if (!next.started) return undefined;
    return { block, retryAfterMs: state.until - now, level: state.level, started: true };
  }

  /** Blocks in force at `now` (for the metrics: a scan of the records, once per scrape). */
  count(now: number): number {
    let blocked = 0;
    for (const [, entry] of this.records.live(now)) if (entry.until > now) blocked++;
    return blocked;
  }

  /** How each block stands, charging nothing. */
  peek(blocks: readonly BlockCheck[], now: number): BlockStanding[] {
    return blocks.map((block) => standing(block, this.records.get(block.key, now), now));
  }

  /** Drops every record `owns` accepts; returns how many. */
  forget(owns: (key: string) => boolean): number {
    return this.records.deleteWhere(owns);
  }

  clear(): void {
    this.records.clear();
  }
}

/** The longest wait among the refusing checks of one block (0: none of its checks refused). */
function refusedFor(checks: readonly RuleCheck[], decision: Decision, key: string): number {
  let wait = 0;
  for (let i = 0; i < checks.length; i++) {
    if (checks[i]!.block?.key !== key) continue;
    const result = decision.results[i]!;
    // A cost no wait would admit is not flooding: it is answered as too large.
    if (result.tooLarge !== true && result.retryAfterMs > wait) wait = result.retryAfterMs;
  }
  // In whole milliseconds, as blocks.lua reads the waits the script answers.
  return Math.ceil(wait);
}
