import type { IncomingMessage } from 'node:http';
import type { OutboundReply } from '../bus/messages.ts';
import { errorMessage } from '../errors.ts';
import type { HookCall } from '../hooks/runner.ts';
import type { Violation } from '../hooks/schemas.ts';
import type { Logger } from '../logger.ts';
import { ClientAddresses, type ClientAddressOptions } from './client-address.ts';
import type { RequestFacts, RequestGate } from './request-gate.ts';
import type { RouteGroup } from './routes.ts';

/** A request the gate has checked: what it was told of it, and the call its hooks got. */
export interface CheckedRequest {
  facts: RequestFacts;
  call: HookCall;
}

/** Whether a body may follow the headers (a refusal then closes the connection rather than read it). */
function bodyPending(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The HTTP server's side of its request gate: who a request comes from (trusted proxies), what the
 * gate says before the body is read, how a refusal is answered, and the news of a failed
 * authentication. Without a gate that checks, a request costs one question here.
 */
export class RequestScreen {
  private readonly addresses: ClientAddresses;

  constructor(
    private readonly gate: RequestGate | undefined,
    options: ClientAddressOptions,
    private readonly logger: Logger,
  ) {
    this.addresses = new ClientAddresses(options);
  }

  /** Whether requests are checked before their body is read. */
  get checking(): boolean {
    return this.gate !== undefined && this.gate.checking();
  }

  /** What the gate is told of a request: its client's address, route group, method and path. */
  facts(req: IncomingMessage, path: string, route_group: RouteGroup): RequestFacts {
    const method = req.method ?? 'GET';
    const address = this.addresses.resolve(req.socket.remoteAddress, req.headers);
    return address === undefined ? { route_group, method, path } : { address, route_group, method, path };
  }

  /**
   * Asks the gate about a request before anything is done with it (meanwhile its body waits,
   * unread), then goes on with `serve` or with `refuse`. A gate that fails serves the request (the
   * hook runner has applied the plugins' on_error already).
   */
  check(facts: RequestFacts, serve: (checked: CheckedRequest) => void, refuse: (violation: Violation) => void): void {
    const checked: CheckedRequest = { facts, call: { signal: undefined } };
    let verdict: Violation | undefined | Promise<Violation | undefined>;
    try {
      verdict = this.gate!.check(facts, checked.call);
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'request check failed; request served');
      verdict = undefined;
    }
    if (!(verdict instanceof Promise)) return verdict === undefined ? serve(checked) : refuse(verdict);
    verdict.then(
      (violation) => (violation === undefined ? serve(checked) : refuse(violation)),
      (error: unknown) => {
        this.logger.error({ err_message: errorMessage(error) }, 'request check failed; request served');
        serve(checked);
      },
    );
  }

  /** Whether anyone is to hear of failed authentications. */
  get hearsAuthFailures(): boolean {
    return this.gate !== undefined;
  }

  /** Tells the gate that a route refused a request's credentials, then (once it has heard) `answer`s. */
  authFailed(facts: () => RequestFacts, checked: CheckedRequest | undefined, answer: () => void): void {
    let told: void | Promise<void> = undefined;
    try {
      told = this.gate!.authFailed(checked?.facts ?? facts(), checked?.call ?? { signal: undefined });
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'failed authentication could not be reported');
    }
    if (told instanceof Promise) told.then(answer, answer);
    else answer();
  }
}

/**
 * The answer to a request refused before its body was read: the violation's status, reply and
 * Retry-After. A body that may follow is never read: the connection closes after the answer.
 */
export function refusalBeforeBody(req: IncomingMessage, violation: Violation, channel: string): OutboundReply {
  const headers = bodyPending(req) ? { ...violation.headers, Connection: 'close' } : violation.headers;
  const reply: OutboundReply = {
    messageId: '',
    channel,
    conversationId: '',
    kind: 'refused',
    status: violation.httpStatus,
    code: violation.code,
    text: violation.description,
    headers,
    silent: false,
  };
  if (violation.retryAfter !== undefined) reply.retryAfter = violation.retryAfter;
  return reply;
}
