import type { BlockCheck, BlockPolicy, BlockStanding, BlockState } from './types.ts';

/**
 * The block rules as pure functions of (state, now, policy): the memory store runs them and
 * store/blocks.lua mirrors them line for line. `undefined` state means "no record".
 */

/** Milliseconds until the subject's block ends (0: not blocked). */
export function blockedFor(state: BlockState | undefined, now: number): number {
  return state !== undefined && state.until > now ? state.until - now : 0;
}

/** The level the last block had, one level less for every `decayMs` since it ended. */
export function currentLevel(state: BlockState | undefined, now: number, policy: BlockPolicy): number {
  if (state === undefined || state.level === 0 || now < state.until) return state?.level ?? 0;
  return Math.max(0, state.level - Math.floor((now - state.until) / policy.decayMs));
}

/** Refusals counted towards the next block (they lapse when the refusals' retry times have passed). */
export function liveStrikes(state: BlockState | undefined, now: number): number {
  return state !== undefined && state.strikesUntil > now ? state.strikes : 0;
}

/**
 * One refusal of a subject that is not blocked, whose rules asked it to wait `waitMs`: counted, or,
 * when `after` refusals are already counted in this spell, the start of a block one level above the
 * current one (at most the last level). Returns the new state and whether a block started.
 */
export function strike(state: BlockState | undefined, now: number, policy: BlockPolicy, waitMs: number): { state: BlockState; started: boolean } {
  const strikes = liveStrikes(state, now);
  if (strikes >= policy.after) {
    const level = Math.min(currentLevel(state, now, policy) + 1, policy.durationsMs.length);
    return { state: { strikes: 0, strikesUntil: 0, level, until: now + policy.durationsMs[level - 1]! }, started: true };
  }
  const strikesUntil = Math.max(strikes > 0 ? state!.strikesUntil : 0, now + waitMs);
  return { state: { strikes: strikes + 1, strikesUntil, level: state?.level ?? 0, until: state?.until ?? 0 }, started: false };
}

/** How a block stands at `now`, from its record (undefined: none). */
export function standing(block: BlockCheck, state: BlockState | undefined, now: number): BlockStanding {
  return { block, retryAfterMs: blockedFor(state, now), level: currentLevel(state, now, block.policy), strikes: liveStrikes(state, now) };
}

/** When the record says nothing any more: its strikes have lapsed and its level has decayed to 0. */
export function expiresAt(state: BlockState, policy: BlockPolicy): number {
  return Math.max(state.strikesUntil, state.until + state.level * policy.decayMs);
}
