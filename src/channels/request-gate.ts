import type { HookCall } from '../hooks/runner.ts';
import type { HookPayload, Violation } from '../hooks/schemas.ts';

/** What the HTTP server knows of a request before it reads the body. */
export type RequestFacts = HookPayload<'preRequest'>;

/**
 * What the HTTP server asks about every request before it reads the body (a refused one costs no
 * body read, no parse, no signature check), and whom it tells of a failed authentication.
 */
export interface RequestGate {
  /** Whether anything checks requests; when not, nothing is worked out for a request's sake. */
  checking(): boolean;
  /** undefined: serve it; a violation: answer it with that, at once. */
  check(request: RequestFacts, call: HookCall): Violation | undefined | Promise<Violation | undefined>;
  /**
   * A route answered 401 (a wrong token, a bad signature or secret). `call` is the one the request's
   * check got, if it was checked. Settles once those told have taken it in: the 401 waits for that,
   * so the client's next request already sees what it cost.
   */
  authFailed(request: RequestFacts, call: HookCall): void | Promise<void>;
}
