import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import { ABORTED } from '../util/abort.ts';
import type { Answerer } from './channel.ts';

/** What a request/response channel says when the agent has not answered in time. */
export const TIMEOUT_REPLY = 'Sorry, that took too long. Please try again.';

// Held, not looked up: the global `performance` is a lazy accessor on Node 20 (see clock.ts).
const perf = performance;
const ONCE: AddEventListenerOptions = Object.freeze({ once: true });
/** The longest delay setTimeout takes as given (it fires at once past it); a longer wait is set again. */
const MAX_DELAY_MS = 2 ** 31 - 1;

// The resolving functions of the promise just made: one executor for every wait, no closure per message.
let resolving: ((reply: OutboundReply | undefined) => void) | undefined;
let rejecting: ((error: unknown) => void) | undefined;
function capture(resolve: (reply: OutboundReply | undefined) => void, reject: (error: unknown) => void): void {
  resolving = resolve;
  rejecting = reject;
}

/**
 * One message waiting for its answer. An object rather than closures: one is made per request, and it
 * is the client signal's abort listener (handleEvent) and an entry of its channel's deadline list.
 */
class Wait {
  prev: Wait | undefined = undefined;
  next: Wait | undefined = undefined;
  /** In its owner's list: neither answered nor given up yet. */
  linked = false;
  readonly answered: Promise<OutboundReply | undefined>;
  private readonly resolve: (reply: OutboundReply | undefined) => void;
  private readonly reject: (error: unknown) => void;

  constructor(
    private readonly owner: ReplyTimeout,
    private readonly controller: AbortController,
    readonly deadline: number,
  ) {
    this.answered = new Promise(capture);
    this.resolve = resolving!;
    this.reject = rejecting!;
  }

  /** The agent answered (a late answer changes nothing: the promise is settled already). */
  settle(reply: OutboundReply): void {
    this.owner.unlink(this);
    this.resolve(reply);
  }

  fail(error: unknown): void {
    this.owner.unlink(this);
    this.reject(error);
  }

  /** Nobody waits any more: resolves with nothing, and the agent's signal aborts so its work stops. */
  giveUp(): void {
    this.owner.unlink(this);
    this.resolve(undefined);
    this.controller.abort(ABORTED);
  }

  /** The client's signal aborted: it went away, or its request is over. */
  handleEvent(): void {
    this.giveUp();
  }
}

/** Settles `wait` with the agent's answer (an async function: no closure per message). */
async function deliver(wait: Wait, answered: Promise<OutboundReply>): Promise<void> {
  let reply: OutboundReply;
  try {
    reply = await answered;
  } catch (error) {
    wait.fail(error);
    return;
  }
  wait.settle(reply);
}

function expire(owner: ReplyTimeout): void {
  owner.expire();
}

/**
 * How a request/response channel (the HTTP API, the Telegram webhook, Discord interactions) waits for
 * the agent: each message's answer for at most `ms`, or until its client goes away, whichever comes
 * first; then the agent's signal aborts, so whatever its hooks hold for the message is let go.
 *
 * One timer for all of a channel's messages, not one each: they all wait `ms`, so the oldest is always
 * the next to expire, and a list in arrival order (unlinked from as answers come) is all it takes.
 */
export class ReplyTimeout {
  private head: Wait | undefined;
  private tail: Wait | undefined;
  private count = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {}

  /**
   * Asks `agent` about `message`, with `controller`'s signal as the agent's, and resolves with the
   * answer, or with undefined when none came within `ms` or `client` aborted first (then `controller`
   * aborts). `client` must abort when the request ends (answered or abandoned), as a response's close
   * does: it is listened to until then. The agent is asked even when the client has already gone (the
   * message was received). Rejects when the agent does.
   */
  ask(agent: Answerer, message: InboundMessage, controller: AbortController, client: AbortSignal = controller.signal): Promise<OutboundReply | undefined> {
    const wait = new Wait(this, controller, perf.now() + this.ms);
    this.link(wait);
    if (client.aborted) wait.giveUp();
    else client.addEventListener('abort', wait, ONCE);
    let answered: Promise<OutboundReply>;
    try {
      answered = agent.answer(message, controller.signal);
    } catch (error) {
      wait.fail(error);
      return wait.answered;
    }
    void deliver(wait, answered);
    return wait.answered;
  }

  /** Gives up on every message still waiting (each resolves with undefined) and stops the timer. */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.head !== undefined) this.head.giveUp();
  }

  /** Messages waiting for their answer. */
  get waiting(): number {
    return this.count;
  }

  /** The timer fired: gives up on every message past its deadline, then sets it for the next one. */
  expire(): void {
    this.timer = undefined;
    const now = perf.now();
    let wait = this.head;
    while (wait !== undefined && wait.deadline <= now) {
      wait.giveUp();
      wait = this.head;
    }
    if (wait !== undefined) this.arm(Math.max(1, Math.ceil(wait.deadline - now)));
  }

  unlink(wait: Wait): void {
    if (!wait.linked) return;
    wait.linked = false;
    const { prev, next } = wait;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    wait.prev = wait.next = undefined;
    this.count--;
  }

  private link(wait: Wait): void {
    wait.linked = true;
    const tail = this.tail;
    wait.prev = tail;
    if (tail === undefined) this.head = wait;
    else tail.next = wait;
    this.tail = wait;
    this.count++;
    // Left set when the list empties: it then fires once for nothing, rather than being cleared and
    // set again for every message of a quiet channel.
    if (this.timer === undefined) this.arm(this.ms);
  }

  private arm(ms: number): void {
    // Unreferenced: a message waiting is a request open on a server, which keeps the process alive.
    this.timer = setTimeout(expire, Math.min(ms, MAX_DELAY_MS), this);
    this.timer.unref();
  }
}
