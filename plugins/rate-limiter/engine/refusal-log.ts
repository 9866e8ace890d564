import { KeyedThrottle, type Clock, type IdentityHasher, type Logger } from '../../../src/plugin-sdk.ts';
import type { PolicyCheck } from '../policy.ts';
import { retryAfterSeconds, type Outcome, type Step } from './outcome.ts';

const LOG_INTERVAL_MS = 10_000;

/**
 * Log lines about refusals, at most one per key per 10 s: a flood is not a log flood. Keys appear
 * only as salted hashes; ids never.
 */
export class RefusalLog {
  private readonly logged: KeyedThrottle;

  constructor(
    private readonly deps: { clock: Clock; logger: Logger; identity: IdentityHasher },
    maxKeys: number,
    private mode: 'enforce' | 'permissive',
  ) {
    this.logged = new KeyedThrottle(maxKeys);
  }

  reconfigure(mode: 'enforce' | 'permissive'): void {
    this.mode = mode;
  }

  /** `routeGroup`: the request's, for a client address's outcome (preRequest). */
  observe(outcome: Outcome, routeGroup?: string): void {
    if (outcome.kind === 'denied') return this.denied(outcome, routeGroup);
    if (outcome.kind === 'blocked') return this.blockStarted(outcome);
    if (outcome.kind !== 'limited') return;
    const { rule, key } = outcome.checks[outcome.binding]!;
    if (!this.logged.pass(key, this.deps.clock.now(), LOG_INTERVAL_MS)) return;
    if (outcome.step === 'preRequest') return this.addressLimited(outcome, routeGroup);
    this.deps.logger.warn(
      {
        hook: outcome.step,
        rule: rule.label,
        limit: rule.source,
        retry_after_s: retryAfterSeconds(outcome.decision.retryAfterMs),
        subject: this.deps.identity.hash(key),
        mode: this.mode,
      },
      this.mode === 'enforce' ? 'rate limit exceeded; request refused' : 'rate limit exceeded; request allowed (permissive)',
    );
  }

  /**
   * A client address over its limit: the address as a salted hash (the one hash for all its route
   * groups), never as is. An address locked out of the admin API says so.
   */
  private addressLimited(outcome: Extract<Outcome, { kind: 'limited' }>, routeGroup: string | undefined): void {
    const { rule } = outcome.checks[outcome.binding]!;
    const enforced = this.mode === 'enforce';
    const what = routeGroup === 'admin' ? 'client address locked out of the admin API' : 'client address over its limit';
    this.deps.logger.warn(
      {
        hook: outcome.step,
        route_group: routeGroup,
        rule: rule.label,
        limit: rule.source,
        retry_after_s: retryAfterSeconds(outcome.decision.retryAfterMs),
        subject: this.deps.identity.hash(outcome.subject.user),
        mode: this.mode,
      },
      enforced ? `${what}; its requests are refused before they are read` : `${what}; requests allowed (permissive)`,
    );
  }

  /** A deny list refused someone: one line per list every 10 s, naming no one (not even by hash). */
  private denied(outcome: Extract<Outcome, { kind: 'denied' }>, routeGroup: string | undefined): void {
    if (!this.logged.pass(`\0denied\0${outcome.list}\0${outcome.step}`, this.deps.clock.now(), LOG_INTERVAL_MS)) return;
    const enforced = this.mode === 'enforce';
    this.deps.logger.warn(
      { hook: outcome.step, list: outcome.list, route_group: routeGroup, mode: this.mode },
      enforced ? `${outcome.list} on a deny list; request refused` : `${outcome.list} on a deny list; request allowed (permissive)`,
    );
  }

  /** One line per block (the refusal that started it), never one per blocked request. */
  private blockStarted(outcome: Extract<Outcome, { kind: 'blocked' }>): void {
    const { block } = outcome;
    if (!outcome.started || !this.logged.pass(block.key, this.deps.clock.now(), LOG_INTERVAL_MS)) return;
    this.deps.logger.warn(
      {
        hook: outcome.step,
        rule: block.subject,
        level: outcome.level,
        block_s: Math.ceil(outcome.durationMs / 1000),
        subject: this.deps.identity.hash(block.key),
        mode: this.mode,
      },
      this.mode === 'enforce' ? 'kept sending while refused; blocked' : 'kept sending while refused; would be blocked (permissive)',
    );
  }

  shadowRefused(step: Step, check: PolicyCheck): void {
    if (!this.logged.pass(`\0shadow${check.key}`, this.deps.clock.now(), LOG_INTERVAL_MS)) return;
    this.deps.logger.info(
      { hook: step, rule: check.rule.label, limit: check.rule.source, subject: this.deps.identity.hash(check.key), mode: 'shadow' },
      'shadow rule would refuse; request allowed',
    );
  }

  /** Something the limiter did after the answer failed (a shadow decision, a settlement): nobody else can hear it. */
  failedLater(step: string, message: string): void {
    if (!this.logged.pass('\0late-failure', this.deps.clock.now(), LOG_INTERVAL_MS)) return;
    this.deps.logger.error({ hook: step, err_message: message }, 'rate limiter failed after answering');
  }
}
