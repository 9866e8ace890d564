import { type Clock, errorMessage, CONTINUE, type HookContext, type HookResult, type IdentityHasher, type Logger, KeyedThrottle } from '../../src/plugin-sdk.ts';
import { isThenable } from './thenable.ts';
import { bindingIndex, rateLimitHeaders } from './headers.ts';
import type { RateLimiterOptions } from './options.ts';
import type { ConcurrencyGate, SlotResult } from './concurrency/types.ts';
import { Holds, type Hold } from './holds.ts';
import { GateUnavailable } from './resilient-gate.ts';
import { Policy, withCost, type CompiledRule, type PolicyCheck, type PromptPlan, type ShadowGroup, type Subject } from './policy.ts';
import { identityKey } from './keys.ts';
import { renderReply } from './reply.ts';
import type { LimiterTelemetry } from './telemetry.ts';
import type { Decision, RateStore } from './store/types.ts';

const LOG_INTERVAL_MS = 10_000;
const UNAVAILABLE_REPLY = "Sorry, I can't take messages for a moment. Please try again shortly.";

export interface RateLimiterDeps {
  options: RateLimiterOptions;
  store: RateStore;
  clock: Clock;
  logger: Logger;
  identity: IdentityHasher;
  mode: 'enforce' | 'permissive';
  /** Metrics and bus events for each decision; none when absent. */
  telemetry?: LimiterTelemetry;
  /** Concurrency slots; needed when a setting has max_concurrent. */
  gate?: ConcurrencyGate;
}

/** A prompt fetch as the limiter sees it. */
export interface PromptCall {
  promptId?: string;
  /** Tokens the orchestrator expects the call to use. */
  estimatedTokens?: number;
  /**
   * Aborts when the call is given up: what it holds is let go and, before postPromptFetch, given
   * back. Read only by calls that hold something (a signal can cost more to make than a decision).
   */
  signal?: AbortSignal;
  /** The hook's call, whose signal may be made only when read (see StepCall): read only when needed. */
  call?: { readonly signal: AbortSignal | undefined };
}

/** How a prompt fetch ended (postPromptFetch). */
export interface PromptEnd {
  promptId?: string;
  outcome: 'completed' | 'failed' | 'cancelled';
  actualTokens?: number;
}

const DEFAULT_PROMPT_ID = 'chat';
/** Held: the global `performance` is a lazy getter on Node 20, paid on every lookup. */
const perf = performance;

/** A prompt fetch between its decision being asked and answered. */
interface PendingPrompt {
  context: HookContext;
  call: PromptCall;
  subject: Subject;
  plan: PromptPlan;
  release: (() => void) | undefined;
  /** Held until its end is reported (see admitPrompt). */
  keep: boolean;
  /** Tokens reserved per token window. */
  cost: number;
  /** Every enforced check, token windows charging `cost`. */
  checks: readonly PolicyCheck[];
}
/** Seconds a client is told to wait after a concurrency refusal: a slot frees when any call ends. */
const CONCURRENCY_RETRY_S = 1;

export interface RateLimiterStats {
  admitted: number;
  refused: number;
  /** Unexpected errors inside the limiter; each let its request through. */
  faults: number;
  keys: number;
}

/**
 * Decides each hook call against every rule that applies, all at once, and turns a refusal into a
 * friendly, id-free violation. Any unexpected error lets the request through (fail open) and is
 * counted and logged, at most once per 10 s.
 */
export class RateLimiter {
  /** Which rules apply to whom (the operator's view reads it too). */
  policy: Policy;
  /** Who was told to slow down recently: chat channels stay quiet until the cooldown ends. */
  private readonly told: KeyedThrottle;
  private readonly logged: KeyedThrottle;
  private readonly counters = { admitted: 0, refused: 0, faults: 0, shadowRefused: 0 };
  /** Admitted prompt fetches not yet ended: what each reserved, until postPromptFetch settles it. */
  private readonly holds: Holds;

  constructor(private deps: RateLimiterDeps) {
    this.policy = new Policy(deps.options);
    this.told = new KeyedThrottle(deps.options.max_keys);
    this.logged = new KeyedThrottle(deps.options.max_keys);
    this.holds = new Holds(deps.options.max_keys, (hold) => this.cancelled(hold));
  }

  /**
   * Takes new options (a config reload) and, when the state must move (another algorithm or backend),
   * a new store. Counts in a kept store carry over, so nobody gets a fresh quota from a reload.
   */
  reconfigure(
    options: RateLimiterOptions,
    mode: 'enforce' | 'permissive',
    moved?: { store: RateStore; gate?: ConcurrencyGate; telemetry?: LimiterTelemetry },
  ): void {
    this.deps = { ...this.deps, options, mode, ...moved };
    this.policy = new Policy(options);
  }

  stats(): RateLimiterStats {
    return { admitted: this.counters.admitted, refused: this.counters.refused, faults: this.counters.faults, keys: this.deps.store.size };
  }

  /**
   * How long a call may wait for a concurrency slot. A permissive limiter never holds traffic up: a
   * call beyond the cap is "refused" at once (reported, then let through by the host).
   */
  queueMs(planned = this.policy.maxQueueMs): number {
    return this.deps.mode === 'permissive' ? 0 : planned;
  }

  /** Prompt fetches admitted and not yet ended (each may hold a slot and reserved tokens). */
  get inFlight(): number {
    return this.holds.size;
  }

  /** Shadow rules that would have refused a request (which went through). */
  get shadowRefused(): number {
    return this.counters.shadowRefused;
  }

  onPrompt(context: HookContext, call: PromptCall = {}): HookResult | Promise<HookResult> {
    try {
      const subject = this.policy.subject(context.channel, context.user_id, context.tenant_id);
      if (subject.exempt) return CONTINUE;
      const plan = this.policy.promptPlan(subject);
      if (plan.slots.length === 0 || this.deps.gate === undefined) {
        return this.settle('prePromptFetch', this.admitPrompt(context, call, subject, plan, undefined));
      }
      const started = perf.now();
      const slot = this.deps.gate.acquire({ limits: plan.slots, queueTimeoutMs: this.queueMs(plan.queueTimeoutMs), signal: signalOf(call) });
      return this.settle(
        'prePromptFetch',
        isThenable(slot)
          ? slot.then(
              (s) => this.withSlot(context, call, subject, plan, s, started),
              (error: unknown) => this.gateFailed(subject, error),
            )
          : this.withSlot(context, call, subject, plan, slot, started),
      );
    } catch (error) {
      return this.fault('prePromptFetch', error);
    }
  }

  /**
   * postPromptFetch: the call ended. Its reserved tokens become the actual count; a call cancelled
   * before it ran gives back everything it was charged; its concurrency slot is released.
   */
  onPromptDone(context: HookContext, end: PromptEnd): HookResult {
    // Most calls hold nothing: no id to build, nothing to look up.
    if (this.holds.size === 0) return CONTINUE;
    try {
      const hold = this.holds.take(holdId(context, end.promptId));
      if (hold !== undefined) this.settleHold(hold, end.outcome, end.actualTokens);
    } catch (error) {
      this.fault('postPromptFetch', error);
    }
    return CONTINUE;
  }

  onTool(context: HookContext, tool: string): HookResult | Promise<HookResult> {
    try {
      const subject = this.policy.subject(context.channel, context.user_id, context.tenant_id);
      if (subject.exempt) return CONTINUE;
      const plan = this.policy.toolPlan(subject, tool);
      if (plan.shadow.length === 0) return this.settle('preToolInvoke', this.decide('preToolInvoke', subject, plan.checks));
      const decided = this.decide('preToolInvoke', subject, plan.checks);
      const thenShadow = (result: HookResult): HookResult => {
        if (result.continue) this.decideShadow('preToolInvoke', subject, plan.shadow, 1, undefined);
        return result;
      };
      return this.settle('preToolInvoke', isThenable(decided) ? decided.then(thenShadow) : thenShadow(decided));
    } catch (error) {
      return this.fault('preToolInvoke', error);
    }
  }

  /** The shared gate failed under on_backend_error "closed": refused as unavailable, like the store. */
  private gateFailed(subject: Subject, error: unknown): HookResult {
    if (!(error instanceof GateUnavailable)) throw error;
    const now = this.deps.clock.now();
    return this.concludeBlind('prePromptFetch', subject, { allowed: false, unavailable: true, retryAfterMs: 1000, results: [] }, now, perf.now());
  }

  /** After the concurrency gate answered: refuse, or go on to the rates with the slot held. */
  private withSlot(
    context: HookContext,
    call: PromptCall,
    subject: Subject,
    plan: PromptPlan,
    slot: SlotResult,
    started: number,
  ): HookResult | Promise<HookResult> {
    if (!slot.ok) return this.concurrencyRefusal(subject, slot.limit.label, slot.limit.limit, started);
    try {
      const result = this.admitPrompt(context, call, subject, plan, slot.release);
      if (isThenable(result)) {
        return result.then(undefined, (error: unknown) => {
          slot.release();
          throw error;
        });
      }
      return result;
    } catch (error) {
      slot.release();
      throw error;
    }
  }

  /**
   * Decides a prompt fetch against its rates and token budgets (the estimate is reserved), and keeps
   * what it was charged until postPromptFetch (or a cancellation) settles it. `release` frees the
   * concurrency slot it holds, if any: at once when refused, else when the call ends.
   */
  private admitPrompt(
    context: HookContext,
    call: PromptCall,
    subject: Subject,
    plan: PromptPlan,
    release: (() => void) | undefined,
  ): HookResult | Promise<HookResult> {
    const hook = 'prePromptFetch';
    // Held until its end only when the end changes something: a token count to settle, a slot to
    // free. Plain request limits hold nothing between hooks (a cancelled call counts, like one that ran).
    const keep = plan.tokens.length > 0 || plan.shadowTokens || release !== undefined;
    if (!keep && plan.shadow.length === 0) return this.decide(hook, subject, plan.checks);
    const cost = Math.max(1, Math.ceil(call.estimatedTokens ?? 1));
    const prompt: PendingPrompt = { context, call, subject, plan, release, keep, cost, checks: plan.checks };
    if (plan.tokens.length > 0) {
      for (const check of plan.tokens) {
        if (cost > check.rule.limit) {
          release?.();
          return this.tooLarge(subject, check.rule, cost);
        }
      }
      prompt.checks = plan.checks.concat(withCost(plan.tokens, cost));
    }
    if (prompt.checks.length === 0) return this.promptDecided(prompt, CONTINUE, undefined);
    const now = this.deps.clock.now();
    const started = this.deps.telemetry ? perf.now() : 0;
    const decision = this.deps.store.decide(prompt.checks, now);
    if (isThenable(decision)) {
      return decision.then(
        (d) => this.promptDecided(prompt, this.conclude(hook, subject, prompt.checks, d, now, started), d),
        (error: unknown) => {
          release?.();
          throw error;
        },
      );
    }
    return this.promptDecided(prompt, this.conclude(hook, subject, prompt.checks, decision, now, started), decision);
  }

  /** A refused call lets go of its slot; an admitted one runs its shadow settings and is held until it ends. */
  private promptDecided(prompt: PendingPrompt, result: HookResult, decision: Decision | undefined): HookResult {
    if (!result.continue) {
      prompt.release?.();
      return result;
    }
    const { plan, keep } = prompt;
    const shadow =
      plan.shadow.length > 0 ? this.decideShadow('prePromptFetch', prompt.subject, plan.shadow, prompt.cost, keep ? [] : undefined) : undefined;
    if (keep) {
      this.holds.add(holdId(prompt.context, prompt.call.promptId), {
        store: this.deps.store,
        checks: prompt.checks,
        decision,
        shadow,
        release: prompt.release,
        signal: signalOf(prompt.call),
      });
    }
    return result;
  }

  /**
   * Decides each shadow setting on its own, after the enforced rules admitted: counted as if enforced
   * (charged only when it would admit), reported when it would refuse, never blocking. `kept`
   * collects the admitted decisions, so a settled or cancelled call adjusts them too.
   */
  private decideShadow(
    hook: string,
    subject: Subject,
    groups: readonly ShadowGroup[],
    cost: number,
    kept: { checks: readonly PolicyCheck[]; decision: Decision }[] | undefined,
  ): { checks: readonly PolicyCheck[]; decision: Decision }[] | undefined {
    const now = this.deps.clock.now();
    for (const group of groups) {
      const tooLarge = group.tokens.find((check) => cost > check.rule.limit);
      if (tooLarge !== undefined) {
        this.reportShadow(hook, subject, tooLarge, now);
        continue;
      }
      const checks = group.tokens.length > 0 ? group.checks.concat(withCost(group.tokens, cost)) : group.checks;
      const record = (decision: Decision): void => {
        if (decision.results.length === 0) return;
        if (decision.allowed) kept?.push({ checks, decision });
        else this.reportShadow(hook, subject, checks[bindingIndex(decision)]!, now);
      };
      try {
        const decision = this.deps.store.decide(checks, now);
        if (isThenable(decision)) decision.then(record, (error: unknown) => this.fault(hook, error));
        else record(decision);
      } catch (error) {
        this.fault(hook, error);
      }
    }
    return kept;
  }

  private reportShadow(hook: string, subject: Subject, check: PolicyCheck, now: number): void {
    this.counters.shadowRefused++;
    this.deps.telemetry?.decided(hook, subject.channel, 'shadow_refused', telemetryRule(check.rule), undefined, 0);
    if (!this.logged.pass(`\0shadow${check.key}`, now, LOG_INTERVAL_MS)) return;
    this.deps.logger.info(
      { hook, rule: check.rule.label, limit: check.rule.source, subject: this.deps.identity.hash(check.key), mode: 'shadow' },
      'shadow rule would refuse; request allowed',
    );
  }

  /** The call ended: its slot is freed, and what it was charged becomes what it used. */
  private settleHold(hold: Hold, outcome: PromptEnd['outcome'], actualTokens: number | undefined): void {
    hold.release?.();
    const refund = outcome === 'cancelled' && actualTokens === undefined;
    if (!refund && actualTokens === undefined) return;
    this.adjust(hold, hold.checks, hold.decision, refund, actualTokens);
    for (const shadow of hold.shadow ?? []) this.adjust(hold, shadow.checks, shadow.decision, refund, actualTokens);
    this.deps.telemetry?.settled(refund ? 'refunded' : 'committed');
  }

  /** A call given up (its signal aborted, or it was dropped unsettled) before postPromptFetch. */
  private cancelled(hold: Hold): void {
    try {
      this.settleHold(hold, 'cancelled', undefined);
    } catch (error) {
      this.fault('postPromptFetch', error);
    }
  }

  private adjust(
    hold: Hold,
    checks: readonly PolicyCheck[],
    decision: Decision | undefined,
    refund: boolean,
    actualTokens: number | undefined,
  ): void {
    // Nothing to adjust after a blind decision, or when a reload moved the state to another store.
    if (decision === undefined || decision.results.length === 0 || hold.store !== this.deps.store) return;
    const deltas = checks.map((check) => {
      const cost = check.cost ?? 1;
      if (refund) return -cost;
      return check.rule.unit === 'tokens' && actualTokens !== undefined ? actualTokens - cost : 0;
    });
    if (deltas.every((d) => d === 0)) return;
    try {
      const done = hold.store.adjust(decision, checks, deltas, this.deps.clock.now());
      if (isThenable(done)) done.then(undefined, (error: unknown) => this.fault('postPromptFetch', error));
    } catch (error) {
      this.fault('postPromptFetch', error);
    }
  }

  /** Whether this refusal is the user's first in `cooldownMs` (chat channels answer only that one). */
  private firstInCooldown(subject: Subject, now: number, cooldownMs: number): boolean {
    return this.told.pass(identityKey(subject.channel, subject.user), now, cooldownMs);
  }

  /** A decision still on its way (a network store) fails open too. */
  private settle(hook: string, result: HookResult | Promise<HookResult>): HookResult | Promise<HookResult> {
    return isThenable(result) ? result.catch((error: unknown) => this.fault(hook, error)) : result;
  }

  private decide(hook: string, subject: Subject, checks: readonly PolicyCheck[]): HookResult | Promise<HookResult> {
    if (checks.length === 0) return CONTINUE;
    const now = this.deps.clock.now();
    // Timed only when someone reads the figure.
    const started = this.deps.telemetry ? perf.now() : 0;
    const decision = this.deps.store.decide(checks, now);
    return isThenable(decision)
      ? decision.then((d) => this.conclude(hook, subject, checks, d, now, started))
      : this.conclude(hook, subject, checks, decision, now, started);
  }

  private conclude(
    hook: string,
    subject: Subject,
    checks: readonly PolicyCheck[],
    decision: Decision,
    now: number,
    started: number,
  ): HookResult {
    if (decision.results.length === 0) return this.concludeBlind(hook, subject, decision, now, started);
    const binding = bindingIndex(decision);
    const headers = rateLimitHeaders(checks, decision, binding, this.deps.options.headers);
    if (decision.allowed) {
      this.counters.admitted++;
      this.deps.telemetry?.decided(hook, subject.channel, 'admitted', telemetryRule(checks[binding]!.rule), undefined, perf.now() - started);
      return { continue: true, headers };
    }
    this.counters.refused++;
    const { rule, key } = checks[binding]!;
    const retryAfter = Number(headers['Retry-After']);
    this.deps.telemetry?.decided(hook, subject.channel, 'refused', telemetryRule(rule), retryAfter, perf.now() - started);
    const cooldownMs = (this.deps.options.reply_cooldown ?? retryAfter) * 1000;
    const firstInCooldown = this.firstInCooldown(subject, now, cooldownMs);
    if (this.logged.pass(key, now, LOG_INTERVAL_MS)) {
      this.deps.logger.warn(
        {
          hook,
          rule: rule.label,
          limit: rule.source,
          retry_after_s: retryAfter,
          subject: this.deps.identity.hash(key),
          mode: this.deps.mode,
        },
        this.deps.mode === 'enforce' ? 'rate limit exceeded; request refused' : 'rate limit exceeded; request allowed (permissive)',
      );
    }
    return {
      continue: false,
      violation: {
        code: 'rate_limited',
        reason: 'Rate limit exceeded',
        description: renderReply(this.deps.options.message, retryAfter, rule.description),
        httpStatus: 429,
        headers,
        retryAfter,
        details: { rule: rule.name, window: rule.window, limit: rule.source },
        silent: !firstInCooldown,
      },
    };
  }

  /** The store decided without looking (its backend is down): admit, or refuse as unavailable. */
  private concludeBlind(hook: string, subject: Subject, decision: Decision, now: number, started: number): HookResult {
    const latency_ms = this.deps.telemetry ? perf.now() - started : 0;
    if (decision.allowed) {
      this.counters.admitted++;
      this.deps.telemetry?.decided(hook, subject.channel, 'admitted', undefined, undefined, latency_ms);
      return CONTINUE;
    }
    this.counters.refused++;
    const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    this.deps.telemetry?.decided(hook, subject.channel, 'unavailable', undefined, retryAfter, latency_ms);
    const firstInCooldown = this.firstInCooldown(subject, now, retryAfter * 1000);
    return {
      continue: false,
      violation: {
        code: 'limiter_unavailable',
        reason: 'Rate limiter temporarily unavailable',
        description: UNAVAILABLE_REPLY,
        httpStatus: 503,
        headers: { 'Retry-After': String(retryAfter) },
        retryAfter,
        details: {},
        silent: !firstInCooldown,
      },
    };
  }

  /** Too many of this user's (or tenant's) calls are in flight, and none finished in time. */
  private concurrencyRefusal(subject: Subject, label: string, limit: number, started: number): HookResult {
    this.counters.refused++;
    this.deps.telemetry?.decided('prePromptFetch', subject.channel, 'refused', `${label}-concurrency`, CONCURRENCY_RETRY_S, perf.now() - started);
    const now = this.deps.clock.now();
    const firstInCooldown = this.firstInCooldown(subject, now, (this.deps.options.reply_cooldown ?? CONCURRENCY_RETRY_S) * 1000);
    const whose = label === 'tenant' ? 'your team has' : 'you have';
    return {
      continue: false,
      violation: {
        code: 'concurrency_limited',
        reason: 'Too many requests in flight',
        description: `Sorry, ${whose} ${limit} ${limit === 1 ? 'request' : 'requests'} in progress already. Please wait for one to finish and try again.`,
        httpStatus: 429,
        headers: { 'Retry-After': String(CONCURRENCY_RETRY_S) },
        retryAfter: CONCURRENCY_RETRY_S,
        details: { rule: label, max_concurrent: limit },
        silent: !firstInCooldown,
      },
    };
  }

  /** One request bigger than a whole token budget: no wait would help, so it is refused at once. */
  private tooLarge(subject: Subject, rule: CompiledRule, tokens: number): HookResult {
    this.counters.refused++;
    this.deps.telemetry?.decided('prePromptFetch', subject.channel, 'refused', telemetryRule(rule), undefined, 0);
    return {
      continue: false,
      violation: {
        code: 'request_too_large',
        reason: 'Request larger than the token budget',
        description: `Sorry, that request is too large: it needs about ${tokens} tokens, and the limit is ${rule.description}. Please make it shorter.`,
        httpStatus: 413,
        headers: {},
        details: { rule: rule.name, window: rule.window, limit: rule.source, tokens },
        silent: false,
      },
    };
  }

  private fault(hook: string, error: unknown): HookResult {
    this.counters.faults++;
    this.deps.telemetry?.fault();
    if (this.logged.pass('\0fault', this.deps.clock.now(), LOG_INTERVAL_MS)) {
      this.deps.logger.error(
        { hook, faults: this.counters.faults, err_message: errorMessage(error) },
        'rate limiter failed; request allowed (fail open)',
      );
    }
    return CONTINUE;
  }
}

function signalOf(call: PromptCall): AbortSignal | undefined {
  return call.signal ?? call.call?.signal;
}

/** Which reservation a postPromptFetch settles: one per message and prompt. */
function holdId(context: HookContext, promptId: string | undefined): string {
  return `${context.channel}\0${context.message_id}\0${promptId ?? DEFAULT_PROMPT_ID}`;
}

/** The rule as metrics name it: "user", "tenant", "tool", or "user-tokens", ... (never an id). */
function telemetryRule(rule: CompiledRule): string {
  return rule.unit === 'tokens' ? `${rule.name}-tokens` : rule.name;
}
