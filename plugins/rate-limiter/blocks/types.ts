/**
 * Escalating blocks: a subject (a user, a tenant; any family of rules keyed by one subject) that keeps
 * sending while it is refused is blocked for a while, each block longer than the last. These are the
 * store-level shapes; the memory store and store/blocks.lua keep them the same way.
 */

/** One family's block settings, compiled once (see blocks/options.ts). */
export interface BlockPolicy {
  /** Refusals a subject may collect in one limited spell; the next refusal starts a block. */
  after: number;
  /** How long each block lasts, by level (level 1 is the first); the last one repeats. */
  durationsMs: readonly number[];
  /** Each span this long after a block has ended takes the next block one level down. */
  decayMs: number;
}

/** Which rules' subject a block is for: named in metrics, logs and the admin view (never an id). */
export type BlockSubject = 'user' | 'tenant' | 'address';

/**
 * The block a rule check belongs to: its subject's block key and settings. Every check of one
 * subject in a request carries the same one; a check without one never blocks anybody.
 */
export interface BlockCheck {
  key: string;
  policy: BlockPolicy;
  subject: BlockSubject;
}

/**
 * One subject's record: its refusals in the current limited spell (`strikes`, counting until
 * `strikesUntil`, the latest of their retry times), and its block level and the end of its last block.
 * From `expiresAt(state)` on it is equivalent to no record at all.
 */
export interface BlockState {
  strikes: number;
  strikesUntil: number;
  level: number;
  until: number;
}

/** A decision's block: the subject's block that refused it (the longest, when several do). */
export interface BlockVerdict {
  block: BlockCheck;
  /** Milliseconds until the block ends. */
  retryAfterMs: number;
  /** The block's level (1 = the first); its length is policy.durationsMs[level - 1]. */
  level: number;
  /** This request started the block (exactly one request per block, on every backend). */
  started: boolean;
}

/** How a subject's block stands, charging nothing (the operator's view). */
export interface BlockStanding {
  block: BlockCheck;
  /** Milliseconds until the current block ends; 0 when not blocked. */
  retryAfterMs: number;
  /** The level the last block had, less what has decayed since. */
  level: number;
  /** Refusals counted towards the next block. */
  strikes: number;
}
