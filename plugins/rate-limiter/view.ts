/** Whose limits an operator asks about. */
export interface LimitsQuery {
  channel: string;
  user_id: string;
  tenant_id?: string;
  /** On a reset: also clear the tenant's own state (its counts and its block), not only the user's. */
  tenant?: boolean;
}

/** The rate limiter's operator view: inspect without consuming, and reset one user's state. */
export interface LimitsAdmin {
  inspect(query: LimitsQuery): Promise<unknown>;
  reset(query: LimitsQuery): Promise<unknown>;
}

declare module '../../src/plugin-sdk.ts' {
  interface ServiceMap {
    limits: LimitsAdmin;
  }
}
import { ceilSeconds } from './engine/outcome.ts';
import { ownsKey, tenantOwnsKey, type KeyScope } from './keys.ts';
import type { Policy, PolicyCheck } from './policy.ts';
import type { BlockStanding } from './blocks/types.ts';
import type { RuleResult } from './store/types.ts';

/** What the view needs of the running limiter; a function, so a reload's new policy or store is used. */
export interface ViewSource {
  policy(): Policy;
  /** `local`: read from this process's memory, because the shared backend could not be read. */
  peek(checks: readonly PolicyCheck[]): Promise<{ results: RuleResult[]; local: boolean; blocks?: BlockStanding[] }>;
  /** Concurrency slots in use per key. */
  inUse(keys: readonly string[]): Promise<number[]>;
  forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number>;
}

/**
 * The operator's view behind the admin API: every rule that applies to one user (their prompts, their
 * tenant, each tool with its own rate) with usage, remaining and reset, read without charging
 * anything; and a reset of that user's own state. Answers name rules and tools, never the ids asked
 * about.
 */
export class LimitsView implements LimitsAdmin {
  constructor(private readonly source: ViewSource) {}

  async inspect(query: LimitsQuery): Promise<unknown> {
    const policy = this.source.policy();
    const subject = policy.subject(query.channel, query.user_id, query.tenant_id);
    const prompt = policy.promptPlan(subject);
    const promptChecks = [...prompt.checks, ...prompt.tokens, ...prompt.shadow.flatMap((group) => [...group.checks, ...group.tokens])];
    const rows: { rule: string; check: PolicyCheck }[] = promptChecks.map((check) => ({ rule: check.rule.label, check }));
    for (const tool of policy.toolNames()) {
      const plan = policy.toolPlan(subject, tool);
      for (const check of [...plan.checks, ...plan.shadow.flatMap((group) => group.checks)]) {
        if (check.rule.name === 'tool') rows.push({ rule: `tool:${tool}${check.rule.label.slice('tool'.length)}`, check });
      }
    }
    const [{ results, local, blocks }, slotsInUse] = await Promise.all([
      this.source.peek(rows.map((r) => r.check)),
      prompt.slots.length > 0 ? this.source.inUse(prompt.slots.map((slot) => slot.key)) : Promise.resolve([]),
    ]);
    return {
      channel: query.channel,
      // While Redis is down the view still answers, from what this gateway decided by itself.
      ...(local ? { backend_unavailable: true } : {}),
      rules: rows.map(({ rule, check }, i) => ({
        rule,
        limit: check.rule.source,
        unit: check.rule.unit,
        ...(check.rule.shadow ? { shadow: true } : {}),
        used: check.rule.limit - results[i]!.remaining,
        remaining: results[i]!.remaining,
        reset_after: ceilSeconds(results[i]!.resetMs),
      })),
      concurrency: prompt.slots.map((slot, i) => ({
        rule: `${slot.label}-concurrency`,
        max_concurrent: slot.limit,
        in_flight: slotsInUse[i] ?? 0,
      })),
      // Each blocked subject's escalation: whether a block is in force, its level, what is counted.
      ...(blocks === undefined
        ? {}
        : {
            blocks: blocks.map((standing) => ({
              rule: standing.block.subject,
              blocked: standing.retryAfterMs > 0,
              level: standing.level,
              retry_after: ceilSeconds(standing.retryAfterMs),
              strikes: standing.strikes,
            })),
          }),
    };
  }

  async reset(query: LimitsQuery): Promise<unknown> {
    const subject = this.source.policy().subject(query.channel, query.user_id, query.tenant_id);
    const { scope } = subject;
    const tenantToo = query.tenant === true && subject.tenant !== undefined;
    const deleted = await this.source.forget(scope, (key) => ownsKey(scope, key) || (tenantToo && tenantOwnsKey(scope, key)));
    return { reset: true, keys_removed: deleted };
  }
}
