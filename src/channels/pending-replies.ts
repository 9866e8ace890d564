import type { InboundMessage, OutboundReply } from '../bus/messages.ts';

/** What a request/response channel says when the agent has not answered in time. */
export const TIMEOUT_REPLY = 'Sorry, that took too long. Please try again.';

export interface PendingRepliesOptions {
  /** How long to wait for a reply before giving up on it. */
  timeoutMs: number;
  /** Puts the message on the bus (the channel's own publish). */
  publish: (message: InboundMessage) => void;
}

/**
 * One message waiting for its reply. An object rather than closures: one is made per request, and it
 * serves as the signal's abort listener (handleEvent) and as the timer's argument.
 */
class Waiter {
  timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly owner: Map<string, Waiter>,
    private readonly id: string,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (reply: OutboundReply | undefined) => void,
  ) {}

  finish(reply: OutboundReply | undefined): void {
    if (!this.owner.delete(this.id)) return;
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this);
    this.resolve(reply);
  }

  /** The signal aborted: the client went away. */
  handleEvent(): void {
    this.finish(undefined);
  }
}

function timedOut(waiter: Waiter): void {
  waiter.finish(undefined);
}

/**
 * The request/response half of a channel: publishes a message and waits for the reply to that very
 * message, for at most `timeoutMs`. Shared by every channel that must answer inside the request it was
 * asked in (the HTTP API, the Telegram webhook, Discord interactions).
 */
export class PendingReplies {
  private readonly waiting = new Map<string, Waiter>();

  constructor(private readonly options: PendingRepliesOptions) {}

  /**
   * Publishes `message` and resolves with its reply, or with undefined when none came within the timeout
   * or `signal` aborted first (the client went away: nobody is left to answer, so nothing waits on it).
   */
  ask(message: InboundMessage, signal?: AbortSignal): Promise<OutboundReply | undefined> {
    let resolve!: (reply: OutboundReply | undefined) => void;
    const replied = new Promise<OutboundReply | undefined>((r) => (resolve = r));
    const waiter = new Waiter(this.waiting, message.id, signal, resolve);
    waiter.timer = setTimeout(timedOut, this.options.timeoutMs, waiter);
    this.waiting.set(message.id, waiter);
    if (signal?.aborted) waiter.finish(undefined);
    else signal?.addEventListener('abort', waiter, { once: true });
    // The agent stops work nobody waits for any more (and lets go of what it holds for it).
    if (signal !== undefined) message.signal = signal;
    // Registered before publishing: the agent may answer before publish returns.
    this.options.publish(message);
    return replied;
  }

  /** Hands a reply to whoever waits for it; false when nobody does (it came too late). */
  deliver(reply: OutboundReply): boolean {
    const waiter = this.waiting.get(reply.messageId);
    if (!waiter) return false;
    waiter.finish(reply);
    return true;
  }

  /** Gives up on every message still waiting (each resolves with undefined). */
  clear(): void {
    for (const waiter of [...this.waiting.values()]) waiter.finish(undefined);
  }

  /** Messages still waiting for their reply. */
  get size(): number {
    return this.waiting.size;
  }
}
