import type { Backend } from '../backend/types.ts';
import { withCost, type PolicyCheck, type ShadowGroup, type Subject } from '../policy.ts';
import type { Decision } from '../store/types.ts';
import { bindingIndex, type Step } from './outcome.ts';
import type { Charge } from './reservations.ts';

export interface ShadowReport {
  /** A shadow rule would have refused (the request went on). */
  refused(step: Step, subject: Subject, check: PolicyCheck): void;
  /** A shadow decision failed after the answer was given: nobody else can hear it. */
  failedLater(step: Step, error: unknown): void;
}

/**
 * Shadow settings: each decided on its own after the enforced rules admitted, counted as if enforced
 * (charged only when it would admit), reported when it would refuse, never refusing anything.
 */
export function decideShadow(
  backend: Backend,
  report: ShadowReport,
  step: Step,
  subject: Subject,
  groups: readonly ShadowGroup[],
  cost: number,
  now: number,
  /** Collects the admitted charges, so that a settled or cancelled call adjusts them too. */
  kept: Charge[] | undefined,
): void {
  for (const group of groups) {
    const tooLarge = group.tokens.find((check) => cost > check.rule.limit);
    if (tooLarge !== undefined) {
      report.refused(step, subject, tooLarge);
      continue;
    }
    const checks = group.tokens.length > 0 ? group.checks.concat(withCost(group.tokens, cost)) : group.checks;
    const record = (decision: Decision): void => {
      if (decision.results.length === 0) return;
      if (decision.allowed) kept?.push({ checks, decision });
      else report.refused(step, subject, checks[bindingIndex(decision)]!);
    };
    // On Redis this lands after the answer: its failure can only be reported.
    Promise.resolve(backend.decide(checks, now, record)).catch((error: unknown) => report.failedLater(step, error));
  }
}
