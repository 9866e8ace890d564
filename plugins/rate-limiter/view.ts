/** Whose limits an operator asks about. */
export interface LimitsQuery {
  channel: string;
  user_id: string;
  tenant_id?: string;
  /** On a reset: also clear the tenant's own state (its counts and its block), not only the user's. */
  tenant?: boolean;
}

/** The rate limiter's operator view: inspect without consuming, and reset one user's (or client address's) state. */
export interface LimitsAdmin {
  inspect(query: LimitsQuery): Promise<unknown>;
  reset(query: LimitsQuery): Promise<unknown>;
  /** by_address's rules for one client address (IPv6: its prefix), by route group. */
  inspectAddress(address: string): Promise<unknown>;
  resetAddress(address: string): Promise<unknown>;
}

declare module '../../src/plugin-sdk.ts' {
  interface ServiceMap {
    limits: LimitsAdmin;
  }
}
import { ceilSeconds } from './engine/outcome.ts';
import type { AddressPolicy } from './address-policy.ts';
import { ownsAddressKey, ownsKey, tenantOwnsKey, type KeyScope } from './keys.ts';
import type { CompiledRule, Policy, PolicyCheck } from './policy.ts';
import type { BlockStanding, BlockSubject } from './blocks/types.ts';
import type { RuleResult } from './store/types.ts';

/** What the view needs of the running limiter; a function, so a reload's new policy or store is used. */
export interface ViewSource {
  policy(): Policy;
  /** by_address compiled, when it is set. */
  addressPolicy(): AddressPolicy | undefined;
  /** `local`: read from this process's memory, because the shared backend could not be read. */
  peek(checks: readonly PolicyCheck[]): Promise<{ results: RuleResult[]; local: boolean; blocks?: BlockStanding[] }>;
  /** Concurrency slots in use per key. */
  inUse(keys: readonly string[]): Promise<number[]>;
  forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number>;
  /** The time (ms): when the current calendar periods end. */
  now(): number;
}

/** A calendar window's row says when its period ends, as an instant, and the zone it turns in. */
function calendarFields(rule: CompiledRule, now: number): Record<string, string> {
  const calendar = rule.calendar;
  if (calendar === undefined) return {};
  return { time_zone: calendar.timeZone, resets_at: new Date(calendar.periodAt(now).end).toISOString() };
}

/** One rule that applies to a subject, as it stands. */
export interface LimitRow {
  /** How operators name it: the rule's label, `tool:<name>` for a tool's own rate. */
  name: string;
  rule: CompiledRule;
  /** The tool a `tool:` row limits. */
  tool?: string;
  remaining: number;
  resetAfterSeconds: number;
}

/** Every rule and concurrency cap that applies to one subject, read without charging anything. */
export interface LimitsReport {
  channel: string;
  /** Read from this process's memory: the shared backend could not be read. */
  local: boolean;
  rows: LimitRow[];
  concurrency: { name: string; maxConcurrent: number; inFlight: number }[];
  /** Each blocked subject's escalation, when blocks are configured (see blocks/). */
  blocks?: { subject: BlockSubject; blocked: boolean; level: number; retryAfterSeconds: number; strikes: number }[];
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
    const report = await this.report(query);
    const now = this.source.now();
    return {
      channel: report.channel,
      // While Redis is down the view still answers, from what this gateway decided by itself.
      ...(report.local ? { backend_unavailable: true } : {}),
      rules: report.rows.map(({ name, rule, remaining, resetAfterSeconds }) => ({
        rule: name,
        limit: rule.source,
        unit: rule.unit,
        ...(rule.shadow ? { shadow: true } : {}),
        used: rule.limit - remaining,
        remaining,
        reset_after: resetAfterSeconds,
        ...calendarFields(rule, now),
      })),
      concurrency: report.concurrency.map(({ name, maxConcurrent, inFlight }) => ({
        rule: name,
        max_concurrent: maxConcurrent,
        in_flight: inFlight,
      })),
      // Each blocked subject's escalation: whether a block is in force, its level, what is counted.
      ...(report.blocks === undefined
        ? {}
        : {
            blocks: report.blocks.map(({ subject, blocked, level, retryAfterSeconds, strikes }) => ({
              rule: subject,
              blocked,
              level,
              retry_after: retryAfterSeconds,
              strikes,
            })),
          }),
    };
  }

  /** The same as `inspect`, typed, for the parts of the plugin that word it for users. */
  async report(query: LimitsQuery): Promise<LimitsReport> {
    const policy = this.source.policy();
    const subject = policy.subject(query.channel, query.user_id, query.tenant_id);
    const prompt = policy.promptPlan(subject);
    const promptChecks = [...prompt.checks, ...prompt.tokens, ...prompt.shadow.flatMap((group) => [...group.checks, ...group.tokens])];
    const rows: { name: string; check: PolicyCheck; tool?: string }[] = promptChecks.map((check) => ({ name: check.rule.label, check }));
    for (const tool of policy.toolNames()) {
      const plan = policy.toolPlan(subject, tool);
      for (const check of [...plan.checks, ...plan.shadow.flatMap((group) => group.checks)]) {
        if (check.rule.name === 'tool') rows.push({ name: `tool:${tool}${check.rule.label.slice('tool'.length)}`, check, tool });
      }
    }
    const [{ results, local, blocks }, slotsInUse] = await Promise.all([
      this.source.peek(rows.map((r) => r.check)),
      prompt.slots.length > 0 ? this.source.inUse(prompt.slots.map((slot) => slot.key)) : Promise.resolve([]),
    ]);
    return {
      channel: query.channel,
      local,
      rows: rows.map(({ name, check, tool }, i) => ({
        name,
        rule: check.rule,
        ...(tool === undefined ? {} : { tool }),
        remaining: results[i]!.remaining,
        resetAfterSeconds: ceilSeconds(results[i]!.resetMs),
      })),
      concurrency: prompt.slots.map((slot, i) => ({
        name: `${slot.label}-concurrency`,
        maxConcurrent: slot.limit,
        inFlight: slotsInUse[i] ?? 0,
      })),
      ...(blocks === undefined ? {} : { blocks: blocks.map(blockRow) }),
    };
  }

  async inspectAddress(address: string): Promise<unknown> {
    const policy = this.source.addressPolicy();
    if (policy === undefined) return { rules: [] };
    const subject = policy.subject(address);
    const rows = policy.limited().flatMap(([group]) => policy.checks(subject, group).map((check) => ({ group, check })));
    const { results, local, blocks } = await this.source.peek(rows.map((r) => r.check));
    const now = this.source.now();
    const block = blocks?.[0] === undefined ? undefined : blockRow(blocks[0]);
    return {
      ...(local ? { backend_unavailable: true } : {}),
      ...(subject.denied ? { denied: true } : {}),
      ...(subject.exempt ? { exempt: true } : {}),
      rules: rows.map(({ group, check }, i) => ({
        rule: `address:${group}${check.rule.label.slice('address'.length)}`,
        route_group: group,
        limit: check.rule.source,
        used: check.rule.limit - results[i]!.remaining,
        remaining: results[i]!.remaining,
        reset_after: ceilSeconds(results[i]!.resetMs),
        ...calendarFields(check.rule, now),
      })),
      // Its escalating block (block.subjects has "address"): one across its route groups.
      ...(block === undefined ? {} : { block: { blocked: block.blocked, level: block.level, retry_after: block.retryAfterSeconds, strikes: block.strikes } }),
    };
  }

  async resetAddress(address: string): Promise<unknown> {
    const policy = this.source.addressPolicy();
    if (policy === undefined) return { reset: true, keys_removed: 0 };
    const { scope } = policy.subject(address);
    const deleted = await this.source.forget(scope, (key) => ownsAddressKey(scope, key));
    return { reset: true, keys_removed: deleted };
  }

  async reset(query: LimitsQuery): Promise<unknown> {
    const subject = this.source.policy().subject(query.channel, query.user_id, query.tenant_id);
    const { scope } = subject;
    const tenantToo = query.tenant === true && subject.tenant !== undefined;
    const deleted = await this.source.forget(scope, (key) => ownsKey(scope, key) || (tenantToo && tenantOwnsKey(scope, key)));
    return { reset: true, keys_removed: deleted };
  }
}

function blockRow(standing: BlockStanding): NonNullable<LimitsReport['blocks']>[number] {
  return {
    subject: standing.block.subject,
    blocked: standing.retryAfterMs > 0,
    level: standing.level,
    retryAfterSeconds: ceilSeconds(standing.retryAfterMs),
    strikes: standing.strikes,
  };
}
