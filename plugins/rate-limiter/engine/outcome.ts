import type { BlockCheck } from '../blocks/types.ts';
import type { SlotLimit } from '../concurrency/types.ts';
import type { CompiledRule, DenyList, PolicyCheck, Subject } from '../policy.ts';
import type { Decision } from '../store/types.ts';

/** The step an outcome is for: a prompt fetch, a tool call, or an HTTP request before its body is read. */
export type Step = 'prePromptFetch' | 'preToolInvoke' | 'preRequest';

interface Common {
  step: Step;
  subject: Subject;
  /** How long deciding took (the store, the concurrency queue). */
  latencyMs: number;
}

/**
 * What deciding one step came to, with the numbers behind it. Deciding returns this; presenting it
 * (a violation, headers, a reply) and observing it (metrics, events) are separate steps.
 */
export type Outcome =
  /**
   * Every rule admitted. `decision` is undefined when nothing was decided (an exempt user, no rule
   * applies, the backend admitted blind under on_backend_error "open"); `binding` is the rule whose
   * numbers the client should heed.
   */
  | (Common & { kind: 'admitted'; checks: readonly PolicyCheck[]; decision: Decision | undefined; binding: number })
  /** A rule refused: `binding` is the one that makes the client wait longest. */
  | (Common & { kind: 'limited'; checks: readonly PolicyCheck[]; decision: Decision; binding: number })
  /** Too many calls in flight for this cap, and none finished within the queue time. */
  | (Common & { kind: 'concurrency_limited'; limit: SlotLimit })
  /** One call bigger than a whole token budget: no wait would admit it. */
  | (Common & { kind: 'too_large'; rule: CompiledRule; tokens: number })
  /** The backend could not decide and on_backend_error is "closed". */
  | (Common & { kind: 'unavailable'; retryAfterMs: number })
  /**
   * Refused by an escalating block: one in force (nothing was read or charged), or one this very
   * refusal started (`started`: exactly one request per block). `level` is the block's (1 = first),
   * `durationMs` its whole length, `retryAfterMs` what is left of it; `untilMs` its end on the
   * limiter's clock, until which every request of the subject is refused.
   */
  | (Common & { kind: 'blocked'; block: BlockCheck; level: number; durationMs: number; retryAfterMs: number; untilMs: number; started: boolean })
  /** The user, tenant or address is on a deny list: nothing was counted. */
  | (Common & { kind: 'denied'; list: DenyList });

/** Seconds as clients are told them: whole, rounded up, so a client waiting that long is never early. */
export function ceilSeconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

/** The wait a refusal announces, in whole seconds (at least 1: "retry now" would be refused again). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, ceilSeconds(ms));
}

/**
 * The rule whose numbers a client should heed: when refused, the refusing rule that makes it wait
 * longest; when admitted, the rule with the fewest requests left.
 */
export function bindingIndex(decision: Decision): number {
  let best = 0;
  for (let i = 1; i < decision.results.length; i++) {
    const a = decision.results[i]!;
    const b = decision.results[best]!;
    const better = decision.allowed
      ? a.remaining < b.remaining || (a.remaining === b.remaining && a.resetMs > b.resetMs)
      : a.retryAfterMs > b.retryAfterMs;
    if (better) best = i;
  }
  return best;
}

