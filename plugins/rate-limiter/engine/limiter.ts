import type { Clock } from '../../../src/plugin-sdk.ts';
import type { Backend } from '../backend/types.ts';
import type { SlotResult } from '../concurrency/types.ts';
import type { RateLimiterOptions } from '../options.ts';
import { Policy, withCost, type PolicyCheck, type PromptPlan, type Subject, type ToolPlan } from '../policy.ts';
import type { Decision } from '../store/types.ts';
import { bindingIndex, type Outcome, type Step } from './outcome.ts';
import { Reservations, type Charge, type PromptEnd } from './reservations.ts';
import { decideShadow, type ShadowReport } from './shadow.ts';

/** Who asks, as the host names them (ids as received: they are normalised here). */
export interface Requester {
  channel: string;
  user: string;
  tenant?: string | undefined;
}

/** A prompt fetch (a model call) to decide. */
export interface PromptRequest extends Requester {
  /** Which call a later promptEnded() settles: unique among the calls in flight. */
  callId: string;
  /** Tokens the call is expected to use (prompt and answer); reserved in every token window. */
  estimatedTokens?: number | undefined;
  /**
   * Where the call's abort signal can be read: what it holds is let go when it aborts. Read only by
   * calls that hold something until their end (a signal can cost more to make than a decision).
   */
  abort?: { readonly signal: AbortSignal | undefined } | undefined;
}

/** A tool call to decide. */
export interface ToolRequest extends Requester {
  tool: string;
}

export interface LimiterDeps {
  clock: Clock;
  mode: 'enforce' | 'permissive';
  /** Sees every outcome, before the host does (metrics, logs). */
  observe?: (outcome: Outcome) => void;
  /** Whether outcomes carry how long deciding took (someone reads it: metrics); else latencyMs is 0. */
  timed?: boolean;
  shadow: ShadowReport;
  settled?: (outcome: 'committed' | 'refunded') => void;
}

/** A prompt fetch between asking the backend and its answer. */
interface PromptDecision {
  request: PromptRequest;
  subject: Subject;
  plan: PromptPlan;
  checks: readonly PolicyCheck[];
  cost: number;
  release: (() => void) | undefined;
  started: number;
  now: number;
}

/** Held: the global `performance` is a lazy getter on Node 20, paid on every lookup. */
const perf = performance;

/**
 * The host-independent limiter: decides a prompt fetch or a tool call against every rule that
 * applies, all at once, and settles a prompt fetch's end. Each decision is handed to `then` as an
 * Outcome, at once when the backend answers at once (memory), later otherwise (Redis).
 */
export class Limiter {
  policy: Policy;
  private readonly reservations: Reservations;

  constructor(
    options: RateLimiterOptions,
    private backend: Backend,
    private readonly deps: LimiterDeps,
  ) {
    this.policy = new Policy(options);
    this.reservations = new Reservations(
      options.max_keys,
      () => this.backend,
      () => deps.clock.now(),
      (error) => deps.shadow.failedLater('prePromptFetch', error),
      deps.settled,
    );
  }

  /** A reloaded config (and, when the state moves, the new backend): counts in a kept backend carry over. */
  reconfigure(options: RateLimiterOptions, mode: 'enforce' | 'permissive', backend = this.backend): void {
    this.deps.mode = mode;
    this.backend = backend;
    this.policy = new Policy(options);
  }

  /** How long a prompt fetch may wait for a concurrency slot. A permissive limiter never holds traffic up. */
  queueMs(planned = this.policy.maxQueueMs): number {
    return this.deps.mode === 'permissive' ? 0 : planned;
  }

  /** Prompt fetches admitted and not yet ended. */
  get inFlight(): number {
    return this.reservations.size;
  }

  prompt<T>(request: PromptRequest, then: (outcome: Outcome) => T): T | Promise<T> {
    const subject = this.subject(request);
    const plan = this.policy.promptPlan(subject);
    const started = this.clock();
    if (subject.denied !== undefined) return then(this.observed(denied('prePromptFetch', subject, this.since(started))));
    if (subject.exempt) return then(admitted('prePromptFetch', subject, this.since(started)));
    if (plan.slots.length === 0) return this.ratePrompt(request, subject, plan, undefined, started, then);
    const slotRequest = { limits: plan.slots, queueTimeoutMs: this.queueMs(plan.queueTimeoutMs), signal: request.abort?.signal };
    return this.backend.acquire(slotRequest, (slot) =>
      slot.ok ? this.ratePrompt(request, subject, plan, slot.release, started, then) : then(this.observed(slotRefusal(subject, slot, this.since(started)))),
    );
  }

  /** The prompt fetch `callId` ended: its slot is freed and its reservation settled. */
  promptEnded(callId: string, end: PromptEnd): void {
    this.reservations.end(callId, end);
  }

  tool<T>(request: ToolRequest, then: (outcome: Outcome) => T): T | Promise<T> {
    const subject = this.subject(request);
    const started = this.clock();
    if (subject.denied !== undefined) return then(this.observed(denied('preToolInvoke', subject, this.since(started))));
    if (subject.exempt) return then(admitted('preToolInvoke', subject, this.since(started)));
    const plan = this.policy.toolPlan(subject, request.tool);
    const now = this.deps.clock.now();
    if (plan.checks.length === 0) return then(this.toolDecided(subject, plan, undefined, now, started));
    // An inline continuation: a named one would be renamed on every call where names are kept.
    return this.backend.decide(plan.checks, now, (decision) => then(this.toolDecided(subject, plan, decision, now, started)));
  }

  private toolDecided(subject: Subject, plan: ToolPlan, decision: Decision | undefined, now: number, started: number): Outcome {
    const step = 'preToolInvoke';
    const outcome = this.observed(decision ? decided(step, subject, plan.checks, decision, now, this.since(started)) : admitted(step, subject, this.since(started)));
    if (outcome.kind === 'admitted' && plan.shadow.length > 0) decideShadow(this.backend, this.deps.shadow, step, subject, plan.shadow, 1, now, undefined);
    return outcome;
  }

  private subject(request: Requester): Subject {
    return this.policy.subject(request.channel, request.user, request.tenant);
  }

  /**
   * A prompt fetch's rates and token budgets (the estimate reserved), decided once any slot is held.
   * What it was charged is held until its end only when the end changes something: tokens to
   * settle, a slot to free. Plain request limits hold nothing (a cancelled call counts).
   */
  private ratePrompt<T>(
    request: PromptRequest,
    subject: Subject,
    plan: PromptPlan,
    release: (() => void) | undefined,
    started: number,
    then: (outcome: Outcome) => T,
  ): T | Promise<T> {
    const step = 'prePromptFetch';
    const cost = Math.max(1, Math.ceil(request.estimatedTokens ?? 1));
    const tooLarge = overflowing(plan.tokens, cost);
    if (tooLarge !== undefined) {
      release?.();
      return then(this.observed({ kind: 'too_large', step, subject, rule: tooLarge.rule, tokens: cost, latencyMs: this.since(started) }));
    }
    const checks = plan.tokens.length > 0 ? plan.checks.concat(withCost(plan.tokens, cost)) : plan.checks;
    const decision: PromptDecision = { request, subject, plan, checks, cost, release, started, now: this.deps.clock.now() };
    if (checks.length === 0) return then(this.promptDecided(decision, undefined));
    return this.backend.decide(checks, decision.now, (result) => then(this.promptDecided(decision, result)));
  }

  /** Refused: the slot goes back at once. Admitted: shadow settings are decided, and the call is held if its end matters. */
  private promptDecided(pending: PromptDecision, decision: Decision | undefined): Outcome {
    const { request, subject, plan, checks, release } = pending;
    const step = 'prePromptFetch';
    const outcome = this.observed(
      decision ? decided(step, subject, checks, decision, pending.now, this.since(pending.started)) : admitted(step, subject, this.since(pending.started)),
    );
    if (outcome.kind !== 'admitted') {
      release?.();
      return outcome;
    }
    const keep = plan.tokens.length > 0 || plan.shadowTokens || release !== undefined;
    const charges: Charge[] | undefined = keep ? (decision ? [{ checks, decision }] : []) : undefined;
    if (plan.shadow.length > 0) decideShadow(this.backend, this.deps.shadow, step, subject, plan.shadow, pending.cost, pending.now, charges);
    if (charges !== undefined) this.reservations.hold(request.callId, { backend: this.backend, charges, release, signal: request.abort?.signal });
    return outcome;
  }

  /** A start time for latencyMs, read only when someone reads latencies. */
  private clock(): number {
    return this.deps.timed ? perf.now() : 0;
  }

  private since(started: number): number {
    return this.deps.timed ? perf.now() - started : 0;
  }

  private observed(outcome: Outcome): Outcome {
    this.deps.observe?.(outcome);
    return outcome;
  }
}

/** The first token check that `cost` alone would overflow (no wait would admit it). */
function overflowing(tokens: readonly PolicyCheck[], cost: number): PolicyCheck | undefined {
  for (const check of tokens) if (cost > check.rule.limit) return check;
  return undefined;
}

export function admitted(step: Step, subject: Subject, latencyMs: number): Outcome {
  return { kind: 'admitted', step, subject, checks: NO_CHECKS, decision: undefined, binding: 0, latencyMs };
}

const NO_CHECKS: readonly PolicyCheck[] = Object.freeze([]);

/** A subject on a deny list: refused, nothing counted. */
export function denied(step: Step, subject: Subject, latencyMs: number): Outcome {
  return { kind: 'denied', step, subject, list: subject.denied!, latencyMs };
}

/** A store's decision as an outcome: admitted (blind, when the backend admitted without looking), limited, blocked, or unavailable. */
export function decided(step: Step, subject: Subject, checks: readonly PolicyCheck[], decision: Decision, now: number, latencyMs: number): Outcome {
  const blocked = decision.blocked;
  if (blocked !== undefined) {
    const { block, level, retryAfterMs, started } = blocked;
    const durationMs = block.policy.durationsMs[level - 1] ?? retryAfterMs;
    return { kind: 'blocked', step, subject, block, level, durationMs, retryAfterMs, untilMs: now + retryAfterMs, started, latencyMs };
  }
  if (decision.results.length === 0) {
    return decision.allowed
      ? { kind: 'admitted', step, subject, checks, decision: undefined, binding: 0, latencyMs }
      : { kind: 'unavailable', step, subject, retryAfterMs: decision.retryAfterMs, latencyMs };
  }
  const binding = bindingIndex(decision);
  return decision.allowed
    ? { kind: 'admitted', step, subject, checks, decision, binding, latencyMs }
    : { kind: 'limited', step, subject, checks, decision, binding, latencyMs };
}

/** No slot: the cap was full for the whole queue time, or the shared backend could not answer. */
function slotRefusal(subject: Subject, slot: Extract<SlotResult, { ok: false }>, latencyMs: number): Outcome {
  if (slot.reason === 'unavailable') return { kind: 'unavailable', step: 'prePromptFetch', subject, retryAfterMs: 1_000, latencyMs };
  return { kind: 'concurrency_limited', step: 'prePromptFetch', subject, limit: slot.limit, latencyMs };
}
