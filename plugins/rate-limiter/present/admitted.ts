import type { Clock, HookResult } from '../../../src/plugin-sdk.ts';
import { ceilSeconds } from '../engine/outcome.ts';
import type { HeaderStyle } from '../options.ts';
import type { CompiledRule, PolicyCheck } from '../policy.ts';
import type { Decision } from '../store/types.ts';
import { rateLimitHeaders } from './headers.ts';

/** Table size: a power of two. */
const SLOTS = 512;

interface Slot {
  rule: CompiledRule;
  remaining: number;
  reset: number;
  answer: HookResult;
}

/**
 * The answers to admitted messages under one rule, with their headers, each built once per thing it
 * says: in any minute a busy rule's messages say one of a few dozen things (requests left, seconds to
 * reset), so building them per message was building the same strings again. Shared answers are
 * frozen. A fixed table, so bounded: an answer that meets another in its slot replaces it. Decisions
 * under several rules, and a calendar window's (its policy item changes with the period), are built
 * each time.
 */
export class AdmittedAnswers {
  private readonly slots: (Slot | undefined)[] = new Array<Slot | undefined>(SLOTS).fill(undefined);

  constructor(
    private readonly style: HeaderStyle,
    private readonly clock: Clock,
  ) {}

  answer(checks: readonly PolicyCheck[], decision: Decision, binding: number): HookResult {
    const { rule } = checks[0]!;
    if (checks.length !== 1 || rule.calendar !== undefined) return { continue: true, headers: this.headers(checks, decision, binding) };
    const { remaining, resetMs } = decision.results[0]!;
    const reset = ceilSeconds(resetMs);
    const index = (remaining * 61 + reset) & (SLOTS - 1);
    const slot = this.slots[index];
    if (slot !== undefined && slot.rule === rule && slot.remaining === remaining && slot.reset === reset) return slot.answer;
    const answer: HookResult = Object.freeze({ continue: true, headers: Object.freeze(this.headers(checks, decision, binding)) });
    this.slots[index] = { rule, remaining, reset, answer };
    return answer;
  }

  private headers(checks: readonly PolicyCheck[], decision: Decision, binding: number): Record<string, string> {
    return rateLimitHeaders(checks, decision, binding, this.style, this.clock);
  }
}
