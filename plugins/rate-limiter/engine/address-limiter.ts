import { AUTHENTICATED_ROUTE_GROUPS, type Clock, type RouteGroup } from '../../../src/plugin-sdk.ts';
import { AddressPolicy } from '../address-policy.ts';
import type { Backend } from '../backend/types.ts';
import type { RateLimiterOptions } from '../options.ts';
import type { PolicyCheck } from '../policy.ts';
import type { Decision } from '../store/types.ts';
import { admitted, decided, denied } from './limiter.ts';
import type { Outcome } from './outcome.ts';

/** An HTTP request before its body is read: who sent it, and to which route group. */
export interface AddressRequest {
  /** The client's address (undefined: the connection had none; such requests share one bucket). */
  address: string | undefined;
  routeGroup: RouteGroup;
}

export interface AddressLimiterDeps {
  clock: Clock;
  /** Whether outcomes carry how long deciding took. */
  timed: boolean;
  /** Sees every counted outcome (metrics, logs), with the request's route group. */
  observe(outcome: Outcome, routeGroup: RouteGroup): void;
}

/** What an admitted request charged, kept until it is known whether it authenticated. */
interface Held {
  checks: readonly PolicyCheck[];
  decision: Decision;
  backend: Backend;
}

const perf = performance;

/**
 * Where an admitted request's charge waits for its authFailed: on the call object the host made for
 * that request alone (its preRequest and authFailed handlers get the same one), under a key no one
 * else has. It goes with the request; a weak map of them cost the garbage collector more than the
 * decision itself.
 */
const HELD = Symbol('address charge');

type CallWithCharge = { [HELD]?: Held | undefined };

function policyOf(options: RateLimiterOptions): AddressPolicy | undefined {
  if (options.by_address === undefined) return undefined;
  const block = options.block?.subjects.includes('address') ? options.block.policy : undefined;
  return new AddressPolicy(options.by_address, options.time_zone, block);
}

/**
 * by_address: decides an HTTP request by its client address and route group, before the body is
 * read, on the same backend as every other limit; and makes a request that then fails authentication
 * count as `failed_auth_cost` requests (the key goes into debt past its limit, so guessing is slow).
 */
export class AddressLimiter {
  private policy: AddressPolicy | undefined;

  constructor(
    options: RateLimiterOptions,
    private backend: Backend,
    private readonly deps: AddressLimiterDeps,
  ) {
    this.policy = policyOf(options);
  }

  /** The compiled setting now in force; undefined when by_address is not set. */
  get current(): AddressPolicy | undefined {
    return this.policy;
  }

  reconfigure(options: RateLimiterOptions, backend = this.backend): void {
    this.backend = backend;
    this.policy = policyOf(options);
  }

  /**
   * Decides one request. `call` is what identifies it to authFailed(): an admitted request's charge
   * is left on it (see HELD).
   */
  request<T>(request: AddressRequest, call: object | undefined, then: (outcome: Outcome | undefined) => T): T | Promise<T> {
    const policy = this.policy;
    if (policy === undefined) return then(undefined);
    const started = this.started();
    const subject = policy.subject(request.address);
    const group = request.routeGroup;
    if (subject.denied !== undefined) return then(this.observed(denied('preRequest', subject, this.since(started)), group));
    if (subject.exempt) return then(admitted('preRequest', subject, this.since(started)));
    const checks = policy.checks(subject, group);
    if (checks.length === 0) return then(undefined);
    const backend = this.backend;
    // Only a request to a route that checks credentials can fail authentication: only its charge is kept.
    const keep = call !== undefined && policy.failedAuthCost > 1 && AUTHENTICATED_ROUTE_GROUPS.includes(group);
    const now = this.deps.clock.now();
    return backend.decide(checks, now, (decision) => {
      const outcome = this.observed(decided('preRequest', subject, checks, decision, now, this.since(started)), group);
      // A backend that cannot answer (Redis down under on_backend_error "closed") refuses messages at
      // the user limits behind this; here it must not take /metrics, /healthz and the admin API down too.
      if (outcome.kind === 'unavailable') return then(undefined);
      if (keep && outcome.kind === 'admitted' && outcome.decision !== undefined) (call as CallWithCharge)[HELD] = { checks, decision, backend };
      return then(outcome);
    });
  }

  /**
   * The request checked with `call` failed authentication: it counts as failed_auth_cost requests
   * in every window of its route group, beyond the limit if need be. Settles once that is recorded.
   */
  authFailed(call: object | undefined): void | Promise<void> {
    const held = call === undefined ? undefined : (call as CallWithCharge)[HELD];
    const policy = this.policy;
    if (held === undefined || policy === undefined) return;
    (call as CallWithCharge)[HELD] = undefined;
    // After a reload that moved the state elsewhere there is nothing to add to.
    if (held.backend !== this.backend) return;
    const extra = policy.failedAuthCost - 1;
    return held.backend.adjust(held.decision, held.checks, held.checks.map(() => extra), this.deps.clock.now());
  }

  private observed(outcome: Outcome, group: RouteGroup): Outcome {
    this.deps.observe(outcome, group);
    return outcome;
  }

  private started(): number {
    return this.deps.timed ? perf.now() : 0;
  }

  private since(started: number): number {
    return this.deps.timed ? perf.now() - started : 0;
  }
}
