import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';
import { ceilSeconds, retryAfterSeconds } from '../engine/outcome.ts';
import type { HeaderStyle } from '../options.ts';
import { policyItemAt, type CompiledRule, type PolicyCheck } from '../policy.ts';
import type { Decision, RuleResult } from '../store/types.ts';

/**
 * X-RateLimit-Limit/-Remaining/-Reset (reset in seconds from now) for the binding rule, and the IETF
 * RateLimit-Policy and RateLimit fields listing every rule that applied, as `style` asks; Retry-After
 * when refused, whatever the style. Built on every admitted message, so built plainly: one string per
 * field, no intermediate arrays. `clock` is read only for a calendar window's policy item (its period's
 * length; see policyItemAt).
 */
export function rateLimitHeaders(
  checks: readonly PolicyCheck[],
  decision: Decision,
  binding: number,
  style: HeaderStyle = 'all',
  clock: Clock = systemClock,
): Record<string, string> {
  const headers = style === 'none' ? {} : limitHeaders(checks, decision, binding, style, clock);
  if (!decision.allowed) headers['Retry-After'] = String(retryAfterSeconds(decision.retryAfterMs));
  return headers;
}

function limitHeaders(
  checks: readonly PolicyCheck[],
  decision: Decision,
  binding: number,
  style: Exclude<HeaderStyle, 'none'>,
  clock: Clock,
): Record<string, string> {
  const results = decision.results;
  const rule = checks[binding]!.rule;
  const result = results[binding]!;
  // The binding rule's figures appear twice (its own fields and its RateLimit item): made once.
  const remaining = String(result.remaining);
  const reset = String(ceilSeconds(result.resetMs));
  if (style === 'legacy') return { 'X-RateLimit-Limit': String(rule.limit), 'X-RateLimit-Remaining': remaining, 'X-RateLimit-Reset': reset };
  let policy = policyItem(checks[0]!.rule, clock);
  let state = binding === 0 ? item(rule.label, remaining, reset) : stateItem(checks[0]!, results[0]!);
  for (let i = 1; i < checks.length; i++) {
    policy += `, ${policyItem(checks[i]!.rule, clock)}`;
    state += `, ${i === binding ? item(rule.label, remaining, reset) : stateItem(checks[i]!, results[i]!)}`;
  }
  if (style === 'ietf') return { 'RateLimit-Policy': policy, RateLimit: state };
  return {
    'X-RateLimit-Limit': String(rule.limit),
    'X-RateLimit-Remaining': remaining,
    'X-RateLimit-Reset': reset,
    'RateLimit-Policy': policy,
    RateLimit: state,
  };
}

function policyItem(rule: CompiledRule, clock: Clock): string {
  return rule.calendar === undefined ? rule.policyItem : policyItemAt(rule, clock.now());
}

/** One rule's item of the RateLimit field: `"user";r=29;t=60`. */
function stateItem(check: PolicyCheck, result: RuleResult): string {
  return item(check.rule.label, String(result.remaining), String(ceilSeconds(result.resetMs)));
}

function item(label: string, remaining: string, reset: string): string {
  return `"${label}";r=${remaining};t=${reset}`;
}
