import { CONTINUE, KeyedThrottle, type Clock, type HookResult } from '../../../src/plugin-sdk.ts';
import { ceilSeconds, retryAfterSeconds, type Outcome } from '../engine/outcome.ts';
import { identityKey } from '../keys.ts';
import type { RateLimiterOptions } from '../options.ts';
import type { Subject } from '../policy.ts';
import { AdmittedAnswers } from './admitted.ts';
import { rateLimitHeaders } from './headers.ts';
import { windowLabel } from '../rate.ts';
import { DEFAULT_REPLIES, humanDuration, inProgress, renderReply, renderTemplate } from './reply.ts';

/** Seconds a client is told to wait after a concurrency refusal: a slot frees when any call ends. */
export const CONCURRENCY_RETRY_S = 1;

/** How often a denied user is told so on chat channels (without reply_cooldown): once a minute, then silence. */
const DENIED_COOLDOWN_S = 60;

/**
 * Turns an outcome into what the host answers: an admission with its rate-limit headers, or a
 * refusal with a friendly, id-free reply, its retry time and headers. Chat channels answer a flooder
 * once per cooldown: later refusals in it are marked silent.
 */
export class Presenter {
  /** Who was told to slow down recently. */
  private readonly told: KeyedThrottle;
  /** Who was told of the block they are in (see toldOfBlock). */
  private readonly toldOfBlocks: KeyedThrottle;
  private admitted: AdmittedAnswers;

  constructor(
    private options: RateLimiterOptions,
    private readonly clock: Clock,
  ) {
    this.told = new KeyedThrottle(options.max_keys);
    this.toldOfBlocks = new KeyedThrottle(options.max_keys);
    this.admitted = new AdmittedAnswers(options.headers, clock);
  }

  reconfigure(options: RateLimiterOptions): void {
    this.options = options;
    this.admitted = new AdmittedAnswers(options.headers, this.clock);
  }

  result(outcome: Outcome): HookResult {
    switch (outcome.kind) {
      case 'admitted': {
        const { decision } = outcome;
        if (decision === undefined || this.options.headers === 'none') return CONTINUE;
        return this.admitted.answer(outcome.checks, decision, outcome.binding);
      }
      case 'limited':
        return this.limited(outcome);
      case 'concurrency_limited': {
        const { limit } = outcome.limit;
        const whose = outcome.limit.label === 'tenant' ? 'tenant' : 'user';
        return this.refusal(outcome.subject, 'concurrency_limited', 'Too many requests in flight', 429, CONCURRENCY_RETRY_S, {
          description: renderTemplate(this.options.concurrency_message, {
            in_progress: inProgress(limit, whose),
            retry_after: humanDuration(CONCURRENCY_RETRY_S),
          }),
          details: { rule: outcome.limit.label, max_concurrent: limit },
        });
      }
      case 'too_large': {
        const { rule, tokens } = outcome;
        const description = renderTemplate(this.options.too_large_message, { tokens: String(tokens), limit: rule.description });
        // No wait would help: no retry time, and every such request is answered.
        return {
          continue: false,
          violation: {
            code: 'request_too_large',
            reason: 'Request larger than the token budget',
            description,
            httpStatus: 413,
            headers: {},
            details: { rule: rule.name, window: rule.window, limit: rule.source, tokens },
            silent: false,
          },
        };
      }
      case 'unavailable': {
        const retryAfter = retryAfterSeconds(outcome.retryAfterMs);
        return this.refusal(outcome.subject, 'limiter_unavailable', 'Rate limiter temporarily unavailable', 503, retryAfter, {
          description: renderTemplate(this.options.unavailable_message, { retry_after: humanDuration(retryAfter) }),
          details: {},
        });
      }
      case 'blocked':
        return this.blocked(outcome);
      case 'denied':
        return this.denied(outcome);
    }
  }

  /** On a deny list: 403, no wait to offer. Chat channels hear it once per cooldown; the request line always. */
  private denied(outcome: Extract<Outcome, { kind: 'denied' }>): HookResult {
    const cooldownMs = (this.options.reply_cooldown ?? DENIED_COOLDOWN_S) * 1000;
    return {
      continue: false,
      violation: {
        code: 'forbidden',
        reason: 'On a deny list',
        description: this.options.denied_message,
        httpStatus: 403,
        headers: {},
        details: { list: outcome.list },
        silent: outcome.step !== 'preRequest' && !this.firstInCooldown(outcome.subject, cooldownMs),
      },
    };
  }

  /** Blocked: how long, kindly; Retry-After is the block's end. Told once per block on chat channels. */
  private blocked(outcome: Extract<Outcome, { kind: 'blocked' }>): HookResult {
    const retryAfter = retryAfterSeconds(outcome.retryAfterMs);
    const description = renderTemplate(this.options.block?.message ?? DEFAULT_REPLIES.blocked_message, {
      duration: humanDuration(ceilSeconds(outcome.durationMs)),
      retry_after: humanDuration(retryAfter),
    });
    return {
      continue: false,
      violation: {
        code: 'blocked',
        reason: 'Blocked for sending while refused',
        description,
        httpStatus: 429,
        retryAfter,
        headers: { 'Retry-After': String(retryAfter) },
        details: { rule: outcome.block.subject, level: outcome.level, block: windowLabel(outcome.durationMs) },
        // A request line (preRequest) answers every refusal; chat channels hear of a block once.
        silent: outcome.step !== 'preRequest' && !this.toldOfBlock(outcome),
      },
    };
  }

  /**
   * Whether this refusal is the one that tells of the block. A user's block is told by the refusal
   * that started it, which only one request gets, whichever gateway it reached. A tenant's block is
   * started by one member's request: each other member is told once, by their first refusal in it.
   */
  private toldOfBlock(outcome: Extract<Outcome, { kind: 'blocked' }>): boolean {
    const first = this.toldOfBlocks.pass(identityKey(outcome.subject.channel, outcome.subject.user), this.clock.now(), outcome.retryAfterMs);
    return outcome.started || (outcome.block.subject !== 'user' && first);
  }

  private limited(outcome: Extract<Outcome, { kind: 'limited' }>): HookResult {
    const { checks, decision, binding } = outcome;
    const { rule } = checks[binding]!;
    const retryAfter = retryAfterSeconds(decision.retryAfterMs);
    if (outcome.step === 'preRequest') {
      // A client address, answered before its request is read: every such answer is sent (HTTP only).
      return {
        continue: false,
        violation: {
          code: 'rate_limited',
          reason: 'Client address over its limit',
          description: renderReply(this.options.address_message, retryAfter, rule.description),
          httpStatus: 429,
          retryAfter,
          headers: rateLimitHeaders(checks, decision, binding, this.options.headers),
          details: { rule: rule.name, window: rule.window, limit: rule.source },
          silent: false,
        },
      };
    }
    return this.refusal(outcome.subject, 'rate_limited', 'Rate limit exceeded', 429, retryAfter, {
      description: renderReply(this.options.message, retryAfter, rule.description),
      details: { rule: rule.name, window: rule.window, limit: rule.source },
      headers: rateLimitHeaders(checks, decision, binding, this.options.headers, this.clock),
    });
  }

  private refusal(
    subject: Subject,
    code: string,
    reason: string,
    httpStatus: number,
    retryAfter: number,
    text: { description: string; details: Record<string, unknown>; headers?: Record<string, string> },
  ): HookResult {
    const cooldownS = this.options.reply_cooldown ?? retryAfter;
    return {
      continue: false,
      violation: {
        code,
        reason,
        description: text.description,
        httpStatus,
        retryAfter,
        headers: text.headers ?? {},
        details: text.details,
        silent: !this.firstInCooldown(subject, cooldownS * 1000),
      },
    };
  }

  /** Whether this refusal is the user's first in `cooldownMs` (chat channels answer only that one). */
  private firstInCooldown(subject: Subject, cooldownMs: number): boolean {
    return this.told.pass(identityKey(subject.channel, subject.user), this.clock.now(), cooldownMs);
  }
}
