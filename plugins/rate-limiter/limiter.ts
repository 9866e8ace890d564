import type { Clock } from '../../src/clock.ts';
import { errorMessage } from '../../src/errors.ts';
import { CONTINUE, type HookContext, type HookResult } from '../../src/hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../../src/logger.ts';
import { KeyedThrottle } from '../../src/util/throttle.ts';
import { bindingIndex, rateLimitHeaders } from './headers.ts';
import type { RateLimiterOptions } from './options.ts';
import { Policy, type PolicyCheck, type Subject } from './policy.ts';
import { renderReply } from './reply.ts';
import { SenderCache } from './senders.ts';
import type { LimiterTelemetry } from './telemetry.ts';
import type { Decision, RateStore } from './store/types.ts';
import { isThenable } from '../../src/util/thenable.ts';

const LOG_INTERVAL_MS = 10_000;
/** Senders whose subject and keys are kept for reuse (a few hundred bytes each). */
const SENDER_CACHE_SIZE = 10_000;
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
}

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
  /** Each recent sender's subject and checks, built by the policy once (see SenderCache). */
  private senders: SenderCache;
  /** Which rules apply to whom (the operator's view reads it too). */
  policy: Policy;
  /** Who was told to slow down recently: chat channels stay quiet until the cooldown ends. */
  private readonly told: KeyedThrottle;
  private readonly logged: KeyedThrottle;
  private readonly counters = { admitted: 0, refused: 0, faults: 0 };

  constructor(private deps: RateLimiterDeps) {
    this.policy = new Policy(deps.options);
    this.senders = new SenderCache(this.policy, Math.min(deps.options.max_keys, SENDER_CACHE_SIZE));
    this.told = new KeyedThrottle(deps.options.max_keys);
    this.logged = new KeyedThrottle(deps.options.max_keys);
  }

  /**
   * Takes new options (a config reload) and, when the state must move (another algorithm or backend),
   * a new store. Counts in a kept store carry over, so nobody gets a fresh quota from a reload.
   */
  reconfigure(
    options: RateLimiterOptions,
    mode: 'enforce' | 'permissive',
    moved?: { store: RateStore; telemetry?: LimiterTelemetry },
  ): void {
    this.deps = { ...this.deps, options, mode, ...moved };
    this.policy = new Policy(options);
    this.senders = new SenderCache(this.policy, Math.min(options.max_keys, SENDER_CACHE_SIZE));
  }

  stats(): RateLimiterStats {
    return { ...this.counters, keys: this.deps.store.size };
  }

  onPrompt(context: HookContext): HookResult | Promise<HookResult> {
    try {
      const sender = this.senders.resolve(context.channel, context.user_id, context.tenant_id);
      if (sender.subject.exempt) return CONTINUE;
      return this.settle('prePromptFetch', this.decide('prePromptFetch', sender.subject, sender.prompt));
    } catch (error) {
      return this.fault('prePromptFetch', error);
    }
  }

  onTool(context: HookContext, tool: string): HookResult | Promise<HookResult> {
    try {
      const sender = this.senders.resolve(context.channel, context.user_id, context.tenant_id);
      if (sender.subject.exempt) return CONTINUE;
      return this.settle('preToolInvoke', this.decide('preToolInvoke', sender.subject, this.senders.forTool(sender, tool)));
    } catch (error) {
      return this.fault('preToolInvoke', error);
    }
  }

  /** A decision still on its way (a network store) fails open too. */
  private settle(hook: string, result: HookResult | Promise<HookResult>): HookResult | Promise<HookResult> {
    return isThenable(result) ? result.catch((error: unknown) => this.fault(hook, error)) : result;
  }

  private decide(hook: string, subject: Subject, checks: readonly PolicyCheck[]): HookResult | Promise<HookResult> {
    if (checks.length === 0) return CONTINUE;
    const now = this.deps.clock.now();
    // Timed only when someone reads the figure.
    const started = this.deps.telemetry ? performance.now() : 0;
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
    const headers = rateLimitHeaders(checks, decision, binding);
    if (decision.allowed) {
      this.counters.admitted++;
      this.deps.telemetry?.decided(hook, subject.channel, 'admitted', checks[binding]!.rule.name, undefined, performance.now() - started);
      return { continue: true, headers };
    }
    this.counters.refused++;
    const { rule, key } = checks[binding]!;
    const retryAfter = Number(headers['Retry-After']);
    this.deps.telemetry?.decided(hook, subject.channel, 'refused', rule.name, retryAfter, performance.now() - started);
    const cooldownMs = (this.deps.options.reply_cooldown ?? retryAfter) * 1000;
    const firstInCooldown = this.told.pass(subject.identity, now, cooldownMs);
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
        details: { rule: rule.name, window: rule.window, limit: rule.source, retry_after: retryAfter },
        quiet: !firstInCooldown,
      },
    };
  }

  /** The store decided without looking (its backend is down): admit, or refuse as unavailable. */
  private concludeBlind(hook: string, subject: Subject, decision: Decision, now: number, started: number): HookResult {
    const latency_ms = this.deps.telemetry ? performance.now() - started : 0;
    if (decision.allowed) {
      this.counters.admitted++;
      this.deps.telemetry?.decided(hook, subject.channel, 'admitted', undefined, undefined, latency_ms);
      return CONTINUE;
    }
    this.counters.refused++;
    const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    this.deps.telemetry?.decided(hook, subject.channel, 'unavailable', undefined, retryAfter, latency_ms);
    const firstInCooldown = this.told.pass(subject.identity, now, retryAfter * 1000);
    return {
      continue: false,
      violation: {
        code: 'limiter_unavailable',
        reason: 'Rate limiter temporarily unavailable',
        description: UNAVAILABLE_REPLY,
        httpStatus: 503,
        headers: { 'Retry-After': String(retryAfter) },
        details: { retry_after: retryAfter },
        quiet: !firstInCooldown,
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
