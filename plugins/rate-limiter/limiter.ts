import type { Clock } from '../../src/clock.ts';
import { errorMessage } from '../../src/errors.ts';
import { CONTINUE, type HookContext, type HookResult } from '../../src/hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../../src/logger.ts';
import { KeyedThrottle } from '../../src/util/throttle.ts';
import { bindingIndex, rateLimitHeaders } from './headers.ts';
import { identityKey } from './keys.ts';
import type { RateLimiterOptions } from './options.ts';
import { Policy, type PolicyCheck, type Subject } from './policy.ts';
import { renderReply } from './reply.ts';
import type { Decision, RateStore } from './store/types.ts';
import { isThenable } from '../../src/util/thenable.ts';

const LOG_INTERVAL_MS = 10_000;
const UNAVAILABLE_REPLY = "Sorry, I can't take messages for a moment. Please try again shortly.";

export interface RateLimiterDeps {
  options: RateLimiterOptions;
  store: RateStore;
  clock: Clock;
  logger: Logger;
  identity: IdentityHasher;
  mode: 'enforce' | 'permissive';
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
  private readonly policy: Policy;
  /** Who was told to slow down recently: chat channels stay quiet until the cooldown ends. */
  private readonly told: KeyedThrottle;
  private readonly logged: KeyedThrottle;
  private readonly counters = { admitted: 0, refused: 0, faults: 0 };

  constructor(private readonly deps: RateLimiterDeps) {
    this.policy = new Policy(deps.options);
    this.told = new KeyedThrottle(deps.options.max_keys);
    this.logged = new KeyedThrottle(deps.options.max_keys);
  }

  stats(): RateLimiterStats {
    return { ...this.counters, keys: this.deps.store.size };
  }

  onPrompt(context: HookContext): HookResult | Promise<HookResult> {
    return this.guard('prePromptFetch', () => {
      const subject = this.policy.subject(context.channel, context.user_id, context.tenant_id);
      return this.decide('prePromptFetch', subject, this.policy.forPrompt(subject));
    });
  }

  onTool(context: HookContext, tool: string): HookResult | Promise<HookResult> {
    return this.guard('preToolInvoke', () => {
      const subject = this.policy.subject(context.channel, context.user_id, context.tenant_id);
      return this.decide('preToolInvoke', subject, this.policy.forTool(subject, tool));
    });
  }

  private guard(hook: string, run: () => HookResult | Promise<HookResult>): HookResult | Promise<HookResult> {
    try {
      const result = run();
      return isThenable(result) ? result.catch((error: unknown) => this.fault(hook, error)) : result;
    } catch (error) {
      return this.fault(hook, error);
    }
  }

  private decide(hook: string, subject: Subject, checks: PolicyCheck[]): HookResult | Promise<HookResult> {
    if (checks.length === 0) return CONTINUE;
    const now = this.deps.clock.now();
    const decision = this.deps.store.decide(checks, now);
    return isThenable(decision)
      ? decision.then((d) => this.conclude(hook, subject, checks, d, now))
      : this.conclude(hook, subject, checks, decision, now);
  }

  private conclude(hook: string, subject: Subject, checks: PolicyCheck[], decision: Decision, now: number): HookResult {
    if (decision.results.length === 0) return this.concludeBlind(subject, decision, now);
    const binding = bindingIndex(decision);
    const headers = rateLimitHeaders(checks, decision, binding);
    if (decision.allowed) {
      this.counters.admitted++;
      return { continue: true, headers };
    }
    this.counters.refused++;
    const { rule, key } = checks[binding]!;
    const retryAfter = Number(headers['Retry-After']);
    const cooldownMs = (this.deps.options.reply_cooldown ?? retryAfter) * 1000;
    const firstInCooldown = this.told.pass(identityKey(subject.channel, subject.user), now, cooldownMs);
    if (this.logged.pass(key, now, LOG_INTERVAL_MS)) {
      this.deps.logger.warn(
        {
          hook,
          rule: rule.name,
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
        details: { rule: rule.name, limit: rule.source, retry_after: retryAfter },
        quiet: !firstInCooldown,
      },
    };
  }

  /** The store decided without looking (its backend is down): admit, or refuse as unavailable. */
  private concludeBlind(subject: Subject, decision: Decision, now: number): HookResult {
    if (decision.allowed) {
      this.counters.admitted++;
      return CONTINUE;
    }
    this.counters.refused++;
    const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    const firstInCooldown = this.told.pass(identityKey(subject.channel, subject.user), now, retryAfter * 1000);
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
    if (this.logged.pass('\0fault', this.deps.clock.now(), LOG_INTERVAL_MS)) {
      this.deps.logger.error(
        { hook, faults: this.counters.faults, err_message: errorMessage(error) },
        'rate limiter failed; request allowed (fail open)',
      );
    }
    return CONTINUE;
  }
}
