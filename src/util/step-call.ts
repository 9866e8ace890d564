import { ABORTED } from './abort.ts';

/**
 * What the hooks and tools of one step get to learn that the step was given up: an AbortSignal that
 * aborts when `upstream` (the client's) aborts, when the hook runner abandons a handler that timed
 * out (abandon()), and in any case at finish().
 *
 * The AbortController behind it is made only when someone reads `signal`: an AbortSignal costs
 * microseconds to make and to abort, more than the rest of a message's way through the agent, and
 * most steps finish without anyone listening. Whether the step was given up is known without it
 * (`aborted`).
 */
export class StepCall {
  private controller: AbortController | undefined;
  private finished = false;
  /** The upstream signal aborted while this step listened to it. */
  private cancelled = false;
  /** abandon() was called: the signal aborts (or is made aborted) with `abandonReason`. */
  private abandoned = false;
  private abandonReason: unknown;
  private readonly upstream: AbortSignal | undefined;

  constructor(upstream: AbortSignal | undefined) {
    // An abort event fires once: an upstream that had already aborted would never have told a listener
    // added now, so it does not abort the step before finish() (as a listener added here would not).
    this.upstream = upstream?.aborted === true ? undefined : upstream;
  }

  /** Aborts when the upstream signal aborts, on abandon(), and at finish(). */
  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = this.controller = new AbortController();
      if (this.finished || this.upstream?.aborted === true) controller.abort(ABORTED);
      else if (this.abandoned) controller.abort(this.abandonReason);
      else this.upstream?.addEventListener('abort', this, { once: true });
    }
    return controller.signal;
  }

  /** Whether `signal` has aborted (or would have, had it been read). */
  get aborted(): boolean {
    if (this.finished || this.cancelled || this.abandoned) return true;
    // Unread, the signal would have aborted with the upstream; read, handleEvent() has seen it do so.
    return this.controller === undefined && this.upstream?.aborted === true;
  }

  /** The upstream signal aborted (an EventListener object: no closure per step). */
  handleEvent(): void {
    this.cancelled = true;
    this.controller?.abort(ABORTED);
  }

  /**
   * The hook runner stopped waiting for a handler (it timed out): the signal aborts with `reason`.
   * Only a controller already made is aborted; one made later is made aborted (no signal is made here).
   */
  abandon(reason: unknown): void {
    if (this.finished || this.abandoned) return;
    this.abandoned = true;
    this.abandonReason = reason;
    this.controller?.abort(reason);
  }

  /** The step is done: whatever still listens lets go. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.controller === undefined) return;
    this.upstream?.removeEventListener('abort', this);
    this.controller.abort(ABORTED);
  }
}
