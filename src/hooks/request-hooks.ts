import type { RequestFacts, RequestGate } from '../channels/request-gate.ts';
import type { Counter, MetricsRegistry } from '../metrics/registry.ts';
import type { HookCall, HookOutcome, HookRunner } from './runner.ts';
import type { Violation } from './schemas.ts';

function violationOf(outcome: HookOutcome): Violation | undefined {
  return outcome.stopped ? outcome.violation : undefined;
}

/**
 * The HTTP server's request checks as hooks: `preRequest` before a body is read (the plugins' modes,
 * on_error, priorities and timeouts apply as for every hook), `authFailed` when a route refused the
 * request's credentials. Failed authentications are counted in /metrics by route group, whether or
 * not a plugin listens.
 */
export class RequestHooks implements RequestGate {
  private readonly failures: Counter;

  constructor(
    private readonly runner: HookRunner,
    metrics: MetricsRegistry,
  ) {
    this.failures = metrics.counter(
      'floodgate_http_auth_failures_total',
      'Requests a route refused for their credentials (wrong admin token, bad webhook signature or secret), by route group.',
      ['route_group'],
    );
  }

  checking(): boolean {
    return this.runner.has('preRequest');
  }

  check(request: RequestFacts, call: HookCall): Violation | undefined | Promise<Violation | undefined> {
    const outcome = this.runner.run('preRequest', request, call);
    return outcome instanceof Promise ? outcome.then(violationOf) : violationOf(outcome);
  }

  authFailed(request: RequestFacts, call: HookCall): void | Promise<void> {
    this.failures.inc({ route_group: request.route_group });
    if (!this.runner.has('authFailed')) return;
    const outcome = this.runner.run('authFailed', request, call);
    if (outcome instanceof Promise) return outcome.then(() => undefined);
  }
}
