import { flattened } from '../../src/plugin-sdk.ts';
import type { Rule } from './algorithms/types.ts';
import { blockKey } from './blocks/keys.ts';
import type { BlockCheck, BlockPolicy, BlockSubject } from './blocks/types.ts';
import { CalendarPeriods, type CalendarUnit } from './calendar/periods.ts';
import { keyScope, normalizeId, normalizeToolName, tenantKey, toolKey, userKey, type KeyScope } from './keys.ts';
import type { SlotLimit } from './concurrency/types.ts';
import type { LimitSetting, RateLimiterOptions } from './options.ts';
import { describeRate, windowLabel, type Rate } from './rate.ts';
import type { RuleCheck } from './store/types.ts';

/** A configured limit, compiled once at startup: everything a decision or a header needs. */
export interface CompiledRule extends Rule {
  /** Which setting it comes from: shown to operators in logs, to clients in RateLimit-Policy. */
  name: 'user' | 'tenant' | 'tool' | 'address';
  /** "30/m" as configured. */
  source: string;
  /** "30 per minute", for the user's reply. */
  description: string;
  /** This rule's RateLimit-Policy item, e.g. `"user";q=30;w=60`. */
  policyItem: string;
  /** "user", or "user-1h" when the setting lists several windows: how headers and operators name it. */
  label: string;
  /** The window, e.g. "1h": a refusal names it. */
  window: string;
  /** Appended to the key: token windows and each window count on their own. */
  keySuffix: string;
  /** Requests, or tokens (prompt fetches only: reserved from the estimate, settled afterwards). */
  unit: 'requests' | 'tokens';
  /** Counted and reported, never enforced. */
  shadow: boolean;
  /** A window that resets on the calendar: its periods, in the configured time zone. */
  calendar?: CalendarPeriods;
}

export interface PolicyCheck extends RuleCheck {
  rule: CompiledRule;
}

/** Everything a prompt fetch is held to, for one message. */
export interface PromptPlan {
  /** Enforced requests rules (each charges 1). */
  checks: readonly PolicyCheck[];
  /** Enforced tokens rules; each message charges its own estimate (see withCost). */
  tokens: readonly PolicyCheck[];
  /** Shadow settings, each decided on its own after the enforced rules admit: requests then tokens. */
  shadow: readonly ShadowGroup[];
  /** Some shadow setting counts tokens (so the call is held until its actual count is known). */
  shadowTokens: boolean;
  /** Concurrency caps (user, tenant); empty when none is set. */
  slots: readonly SlotLimit[];
  /** How long a fetch waits for a slot: the longest queue_timeout_ms of the capped settings. */
  queueTimeoutMs: number;
}

export interface ToolPlan {
  checks: readonly PolicyCheck[];
  shadow: readonly ShadowGroup[];
}

export interface ShadowGroup {
  checks: readonly PolicyCheck[];
  tokens: readonly PolicyCheck[];
}

/**
 * The empty list every plan starts from: plans are built for each message, and most of their lists
 * stay empty (no tokens, no shadow, no slots), so those cost no allocation.
 */
const NONE: readonly never[] = Object.freeze([]);

/** A setting compiled: its rules, and its concurrency cap. */
interface CompiledSetting {
  rates: CompiledRule[];
  tokens: CompiledRule[];
  shadow: boolean;
  maxConcurrent: number | undefined;
  queueTimeoutMs: number;
}

const NO_SETTING: CompiledSetting = { rates: [], tokens: [], shadow: false, maxConcurrent: undefined, queueTimeoutMs: 0 };

/** A copy of `checks` charging `cost` each (a message's token estimate). */
export function withCost(checks: readonly PolicyCheck[], cost: number): PolicyCheck[] {
  return checks.map((check) => (check.block === undefined ? { key: check.key, rule: check.rule, cost } : { key: check.key, rule: check.rule, cost, block: check.block }));
}

/** Who a request is for, after normalisation. */
export interface Subject {
  channel: string;
  /** '' is the channel's anonymous user. */
  user: string;
  /** undefined when the request names no tenant (then no tenant rule applies). */
  tenant: string | undefined;
  /** Where this request's keys live. */
  scope: KeyScope;
  /** Listed in exempt_users, or in a tenant listed in exempt_tenants: never limited. */
  exempt: boolean;
  /** On a deny list (deny_users, deny_tenants; by_address.deny): refused whatever the limits say. */
  denied: DenyList | undefined;
}

/** Which deny list refused a subject. */
export type DenyList = 'user' | 'tenant' | 'address';

/**
 * Whether other subjects' requests also charge this check's key. A user's own keys are charged only by
 * that user's prompt fetches, a tool key only by that user's calls of that tool, a client address's
 * key only by that address's requests to that route group, each time with the same checks; a tenant's
 * key by all its users. A rule of another kind (or a plain Rule) counts as shared. The refusal cache
 * relies on this (backend/refusal-snapshot.ts).
 */
export function chargedByOthers(check: RuleCheck): boolean {
  const name = (check.rule as Partial<CompiledRule>).name;
  return name !== 'user' && name !== 'tool' && name !== 'address';
}

/** "user", "tenant", "tool", or "user-tokens", ...: a rule as metrics and operators name it (never an id). */
export function ruleBase(rule: CompiledRule): string {
  return rule.unit === 'tokens' ? `${rule.name}-tokens` : rule.name;
}

/** The calendars of one time zone, one per unit, shared by every rule that counts in them. */
export type Calendars = (unit: CalendarUnit) => CalendarPeriods;

export function calendarsOf(timeZone: string): Calendars {
  const made = new Map<CalendarUnit, CalendarPeriods>();
  return (unit) => {
    let calendar = made.get(unit);
    if (calendar === undefined) made.set(unit, (calendar = new CalendarPeriods(timeZone, unit)));
    return calendar;
  };
}

/**
 * A rule's RateLimit-Policy item at `now`. A calendar window's `w` is the length of the period `now`
 * is in (a day of 23, 24 or 25 hours, a month of 28 to 31 days), so `q` per `w` is what this period
 * allows; every other rule's item is made once.
 */
export function policyItemAt(rule: CompiledRule, now: number): string {
  if (rule.calendar === undefined) return rule.policyItem;
  const { start, end } = rule.calendar.periodAt(now);
  return `"${rule.label}";q=${rule.limit};w=${Math.round((end - start) / 1000)}${rule.unit === 'tokens' ? ';qu="tokens"' : ''}`;
}

/** A calendar window as compiled: its calendar, and a key suffix of its own (see compile). */
function calendarParts(rate: Rate, calendars: Calendars): Pick<CompiledRule, 'calendar'> & { window: string; suffix: string } {
  const calendar = calendars(rate.calendarUnit!);
  // The unit and the zone are in the key: a reload from "1000/d" (sliding) to "1000/calendar_day",
  // or to another time zone, never reads a count kept by other rules.
  return { calendar, window: `calendar_${calendar.unit}`, suffix: `|cal:${calendar.unit}:${calendar.timeZone}` };
}

function compile(
  name: CompiledRule['name'],
  rate: Rate,
  several: boolean,
  unit: CompiledRule['unit'],
  shadow: boolean,
  calendars: Calendars,
): CompiledRule {
  const seconds = Math.ceil(rate.windowMs / 1000);
  const calendar = rate.calendarUnit === undefined ? undefined : calendarParts(rate, calendars);
  const window = calendar?.window ?? windowLabel(rate.windowMs);
  const base = unit === 'tokens' ? `${name}-tokens` : name;
  const label = several ? `${base}-${window}` : base;
  return {
    name,
    limit: rate.limit,
    windowMs: rate.windowMs,
    source: rate.source,
    description: unit === 'tokens' ? describeRate(rate).replace(' per ', ' tokens per ') : describeRate(rate),
    policyItem: `"${label}";q=${rate.limit};w=${seconds}${unit === 'tokens' ? ';qu="tokens"' : ''}`,
    label,
    window,
    // By window, however many the setting lists: a reload that adds a window keeps this one's count.
    keySuffix: `${unit === 'tokens' ? '|tok' : ''}${calendar?.suffix ?? `|${rate.windowMs}`}`,
    unit,
    shadow,
    calendar: calendar?.calendar,
  };
}

export function compileRates(
  name: CompiledRule['name'],
  rates: readonly Rate[],
  unit: CompiledRule['unit'],
  shadow: boolean,
  calendars: Calendars,
): CompiledRule[] {
  return rates.map((rate) => compile(name, rate, rates.length > 1, unit, shadow, calendars));
}

function compileSetting(name: CompiledRule['name'], setting: LimitSetting | undefined, calendars: Calendars): CompiledSetting {
  if (setting === undefined) return NO_SETTING;
  return {
    rates: compileRates(name, setting.rates, 'requests', setting.shadow, calendars),
    tokens: compileRates(name, setting.tokens, 'tokens', setting.shadow, calendars),
    shadow: setting.shadow,
    maxConcurrent: setting.maxConcurrent,
    queueTimeoutMs: setting.queueTimeoutMs,
  };
}

/**
 * `checks` with one check per rule for `key` added (a new list: `checks` may be NONE), each of them
 * counting towards `block` when there is one.
 */
function plus(checks: readonly PolicyCheck[], key: string, rules: readonly CompiledRule[], block?: BlockCheck): readonly PolicyCheck[] {
  if (rules.length === 0) return checks;
  // Sized at once: a list grown from empty by push() reserves room for 17.
  const list = new Array<PolicyCheck>(checks.length + rules.length);
  let i = 0;
  for (const check of checks) list[i++] = check;
  for (const rule of rules) list[i++] = block === undefined ? { key: flattened(key + rule.keySuffix), rule } : { key: flattened(key + rule.keySuffix), rule, block };
  return list;
}

/** Concurrency slots live beside the rate keys, under the same hash tag. */
export function slotKey(key: string): string {
  return `${key}|conc`;
}

/** A setting's request rates, added to a tool call's plan (tools count requests only). */
function addToolSetting(plan: ToolPlan, key: string, setting: CompiledSetting, block: BlockCheck | undefined): void {
  if (!setting.shadow) plan.checks = plus(plan.checks, key, setting.rates, block);
  else if (setting.rates.length > 0) plan.shadow = [...plan.shadow, { checks: plus(NONE, key, setting.rates), tokens: NONE }];
}

/** Ids as a list names them, normalised as requests' ids are; blank ones name nobody. */
function idSet(ids: readonly string[]): ReadonlySet<string> {
  return new Set(ids.map(normalizeId).filter((id) => id !== ''));
}

/** Which rules apply to a request: compiled once, asked on every message. */
export class Policy {
  private readonly user: CompiledSetting;
  private readonly tenant: CompiledSetting;
  private readonly tools = new Map<string, CompiledSetting>();
  /** A tool without its own rate is limited per user and tool at the by_user rate(s). */
  private readonly toolDefault: CompiledSetting;

  private readonly exemptUsers: ReadonlySet<string>;
  private readonly exemptTenants: ReadonlySet<string>;
  private readonly deniedUsers: ReadonlySet<string>;
  private readonly deniedTenants: ReadonlySet<string>;
  /** The block settings of each blocked subject; none when block is not configured. */
  private readonly userBlock: BlockPolicy | undefined;
  private readonly tenantBlock: BlockPolicy | undefined;

  constructor(options: RateLimiterOptions) {
    const block = options.block;
    this.userBlock = block?.subjects.includes('user') ? block.policy : undefined;
    this.tenantBlock = block?.subjects.includes('tenant') ? block.policy : undefined;
    this.exemptUsers = idSet(options.exempt_users);
    this.exemptTenants = idSet(options.exempt_tenants);
    this.deniedUsers = idSet(options.deny_users);
    this.deniedTenants = idSet(options.deny_tenants);
    const calendars = calendarsOf(options.time_zone);
    this.user = compileSetting('user', options.by_user, calendars);
    this.tenant = compileSetting('tenant', options.by_tenant, calendars);
    const byUser = options.by_user;
    this.toolDefault = byUser ? compileSetting('tool', { ...byUser, tokens: [], maxConcurrent: undefined }, calendars) : NO_SETTING;
    for (const [tool, setting] of Object.entries(options.by_tool)) this.tools.set(normalizeToolName(tool), compileSetting('tool', setting, calendars));
  }

  subject(channel: string, userId: string, tenantId: string | undefined): Subject {
    const normalTenant = tenantId === undefined ? '' : normalizeId(tenantId);
    const tenant = normalTenant === '' ? undefined : normalTenant;
    const user = normalizeId(userId);
    // A user who names a tenant lives under its hash tag whether or not a tenant rule applies now:
    // adding or removing by_tenant on reload then keeps every user's count.
    const scope = keyScope(channel, user, tenant);
    const exempt =
      (this.exemptUsers.size > 0 && this.exemptUsers.has(user)) || (tenant !== undefined && this.exemptTenants.size > 0 && this.exemptTenants.has(tenant));
    return { channel, user, tenant, scope, exempt, denied: this.denied(user, tenant) };
  }

  private denied(user: string, tenant: string | undefined): DenyList | undefined {
    if (this.deniedUsers.size > 0 && this.deniedUsers.has(user)) return 'user';
    if (tenant !== undefined && this.deniedTenants.size > 0 && this.deniedTenants.has(tenant)) return 'tenant';
    return undefined;
  }

  /**
   * Every window this policy counts in, as operators name them ("user 1h", "tool:search 1m",
   * "tenant-tokens calendar_month Europe/Berlin"): a reload keeps the count of each window still
   * named, and the new ones count from then on.
   */
  windows(): string[] {
    const window = (rule: CompiledRule) => (rule.calendar === undefined ? rule.window : `${rule.window} ${rule.calendar.timeZone}`);
    const named = (setting: CompiledSetting, tool?: string) =>
      [...setting.rates, ...setting.tokens].map((rule) => `${tool === undefined ? ruleBase(rule) : `tool:${tool}`} ${window(rule)}`);
    const tools = [...this.tools].flatMap(([tool, setting]) => named(setting, tool));
    return [...named(this.user), ...named(this.tenant), ...named(this.toolDefault), ...tools];
  }

  /** The tools with a rate of their own, normalised. */
  toolNames(): string[] {
    return [...this.tools.keys()];
  }

  /** Whether any setting reserves tokens or caps concurrency: prompt fetches are then held until postPromptFetch. */
  get holdsPrompts(): boolean {
    return this.user.tokens.length + this.tenant.tokens.length > 0 || this.user.maxConcurrent !== undefined || this.tenant.maxConcurrent !== undefined;
  }

  /** The longest a prompt fetch may wait for a concurrency slot. */
  get maxQueueMs(): number {
    return Math.max(this.user.maxConcurrent ? this.user.queueTimeoutMs : 0, this.tenant.maxConcurrent ? this.tenant.queueTimeoutMs : 0);
  }

  /** A prompt fetch counts against the user's settings and the tenant's. */
  promptPlan(subject: Subject): PromptPlan {
    const plan: PromptPlan = { checks: NONE, tokens: NONE, shadow: NONE, shadowTokens: false, slots: NONE, queueTimeoutMs: 0 };
    const user = userKey(subject.scope);
    this.addSetting(plan, user, this.user, this.block(user, this.userBlock, 'user'));
    if (subject.tenant !== undefined) {
      const tenant = tenantKey(subject.scope);
      this.addSetting(plan, tenant, this.tenant, this.block(tenant, this.tenantBlock, 'tenant'));
    }
    return plan;
  }

  /** The block of the subject whose rules live at `key`, when that subject is blocked at all. */
  private block(key: string, policy: BlockPolicy | undefined, subject: BlockSubject): BlockCheck | undefined {
    return policy === undefined ? undefined : { key: blockKey(key), policy, subject };
  }

  private addSetting(plan: PromptPlan, key: string, setting: CompiledSetting, block: BlockCheck | undefined): void {
    if (setting.shadow) {
      const group: ShadowGroup = { checks: plus(NONE, key, setting.rates), tokens: plus(NONE, key, setting.tokens) };
      if (group.checks.length + group.tokens.length > 0) plan.shadow = [...plan.shadow, group];
      if (group.tokens.length > 0) plan.shadowTokens = true;
      return;
    }
    plan.checks = plus(plan.checks, key, setting.rates, block);
    plan.tokens = plus(plan.tokens, key, setting.tokens, block);
    if (setting.maxConcurrent !== undefined) {
      plan.slots = [...plan.slots, { key: slotKey(key), limit: setting.maxConcurrent, label: setting === this.user ? 'user' : 'tenant' }];
      plan.queueTimeoutMs = Math.max(plan.queueTimeoutMs, setting.queueTimeoutMs);
    }
  }

  /** A tool call counts against the tenant's rate and the user's rate for that tool. */
  toolPlan(subject: Subject, rawTool: string): ToolPlan {
    const tool = normalizeToolName(rawTool);
    const plan: ToolPlan = { checks: NONE, shadow: NONE };
    if (subject.tenant !== undefined) {
      const tenant = tenantKey(subject.scope);
      addToolSetting(plan, tenant, this.tenant, this.block(tenant, this.tenantBlock, 'tenant'));
    }
    // A tool's rules are the user's own: their refusals count towards the user's block.
    addToolSetting(plan, toolKey(subject.scope, tool), this.tools.get(tool) ?? this.toolDefault, this.block(userKey(subject.scope), this.userBlock, 'user'));
    return plan;
  }

  /** The enforced requests rules of a prompt fetch. */
  forPrompt(subject: Subject): readonly PolicyCheck[] {
    return this.promptPlan(subject).checks;
  }

  /** The enforced rules of a tool call. */
  forTool(subject: Subject, rawTool: string): readonly PolicyCheck[] {
    return this.toolPlan(subject, rawTool).checks;
  }
}
