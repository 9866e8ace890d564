import type { Rule } from './algorithms/types.ts';
import { identityKey, keyScope, normalizeId, normalizeToolName, tenantKey, toolKey, userKey, type KeyScope } from './keys.ts';
import type { RateLimiterOptions } from './options.ts';
import { describeRate, rateList, windowLabel, type Rate } from './rate.ts';
import type { RuleCheck } from './store/types.ts';

/** A configured limit, compiled once at startup: everything a decision or a header needs. */
export interface CompiledRule extends Rule {
  /** Which setting it comes from: shown to operators in logs, to clients in RateLimit-Policy. */
  name: 'user' | 'tenant' | 'tool';
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
  /** Appended to the key when the setting lists several windows, so each window counts on its own. */
  keySuffix: string;
}

export interface PolicyCheck extends RuleCheck {
  rule: CompiledRule;
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
  /** The user for per-user state that never leaves the process (reply cooldowns); see identityKey(). */
  identity: string;
  /** Listed in exempt_users, or in a tenant listed in exempt_tenants: never limited. */
  exempt: boolean;
}

function compile(name: CompiledRule['name'], rate: Rate, several: boolean): CompiledRule {
  const seconds = Math.ceil(rate.windowMs / 1000);
  const window = windowLabel(rate.windowMs);
  const label = several ? `${name}-${window}` : name;
  return {
    name,
    limit: rate.limit,
    windowMs: rate.windowMs,
    source: rate.source,
    description: describeRate(rate),
    policyItem: `"${label}";q=${rate.limit};w=${seconds}`,
    label,
    window,
    keySuffix: several ? `|${rate.windowMs}` : '',
  };
}

function compileAll(name: CompiledRule['name'], spec: Rate | Rate[] | undefined): CompiledRule[] {
  const rates = rateList(spec);
  return rates.map((rate) => compile(name, rate, rates.length > 1));
}

function push(checks: PolicyCheck[], key: string, rules: readonly CompiledRule[]): void {
  for (const rule of rules) checks.push({ key: key + rule.keySuffix, rule });
}

/** Which rules apply to a request: compiled once, asked on every message. */
export class Policy {
  private readonly user: CompiledRule[];
  private readonly tenant: CompiledRule[];
  private readonly tools = new Map<string, CompiledRule[]>();
  /** A tool without its own rate is limited per user and tool at the by_user rate(s). */
  private readonly toolDefault: CompiledRule[];

  private readonly exemptUsers: ReadonlySet<string>;
  private readonly exemptTenants: ReadonlySet<string>;

  constructor(options: RateLimiterOptions) {
    this.exemptUsers = new Set(options.exempt_users.map(normalizeId).filter((id) => id !== ''));
    this.exemptTenants = new Set(options.exempt_tenants.map(normalizeId).filter((id) => id !== ''));
    this.user = compileAll('user', options.by_user);
    this.tenant = compileAll('tenant', options.by_tenant);
    this.toolDefault = compileAll('tool', options.by_user);
    for (const [tool, spec] of Object.entries(options.by_tool)) this.tools.set(normalizeToolName(tool), compileAll('tool', spec));
  }

  subject(channel: string, userId: string, tenantId: string | undefined): Subject {
    const normalTenant = tenantId === undefined ? '' : normalizeId(tenantId);
    const tenant = normalTenant === '' ? undefined : normalTenant;
    const user = normalizeId(userId);
    // Users live under their tenant's hash tag only when a tenant rule must be decided with theirs.
    const scope = keyScope(channel, user, this.tenant.length > 0 ? tenant : undefined);
    const exempt = this.exemptUsers.has(user) || (tenant !== undefined && this.exemptTenants.has(tenant));
    return { channel, user, tenant, scope, identity: identityKey(channel, user), exempt };
  }

  /** The tools with a rate of their own, normalised. */
  toolNames(): string[] {
    return [...this.tools.keys()];
  }

  /** A prompt fetch counts against the user's rule and the tenant's rule. */
  forPrompt(subject: Subject): PolicyCheck[] {
    const checks: PolicyCheck[] = [];
    push(checks, userKey(subject.scope), this.user);
    if (subject.tenant !== undefined) push(checks, tenantKey(subject.scope), this.tenant);
    return checks;
  }

  /** A tool call counts against the tenant's rule and the user's rule for that tool. */
  forTool(subject: Subject, rawTool: string): PolicyCheck[] {
    const tool = normalizeToolName(rawTool);
    const checks: PolicyCheck[] = [];
    if (subject.tenant !== undefined) push(checks, tenantKey(subject.scope), this.tenant);
    push(checks, toolKey(subject.scope, tool), this.tools.get(tool) ?? this.toolDefault);
    return checks;
  }
}
