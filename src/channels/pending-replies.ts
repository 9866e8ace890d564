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
 * The request/response half of a channel: publishes a message and waits for the reply to that very
 * message, for at most `timeoutMs`. Shared by every channel that must answer inside the request it was
 * asked in (the HTTP API, the Telegram webhook, Discord interactions).
 */
export class PendingReplies {
  private readonly waiting = new Map<string, (reply: OutboundReply | undefined) => void>();

  constructor(private readonly options: PendingRepliesOptions) {}

  /**
   * Publishes `message` and resolves with its reply, or with undefined when none came within the timeout
   * or `signal` aborted first (the client went away: nobody is left to answer, so nothing waits on it).
   */
  ask(message: InboundMessage, signal?: AbortSignal): Promise<OutboundReply | undefined> {
    const replied = new Promise<OutboundReply | undefined>((resolve) => {
      const onAbort = (): void => finish(undefined);
      const timer = setTimeout(() => finish(undefined), this.options.timeoutMs);
      const finish = (reply: OutboundReply | undefined): void => {
        if (!this.waiting.delete(message.id)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(reply);
      };
      this.waiting.set(message.id, finish);
      if (signal?.aborted) finish(undefined);
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    // The agent stops work nobody waits for any more (and lets go of what it holds for it).
    if (signal !== undefined) message.signal = signal;
    // Registered before publishing: the agent may answer before publish returns.
    this.options.publish(message);
    return replied;
  }

  /** Hands a reply to whoever waits for it; false when nobody does (it came too late). */
  deliver(reply: OutboundReply): boolean {
    const finish = this.waiting.get(reply.messageId);
    if (!finish) return false;
    finish(reply);
    return true;
  }

  /** Gives up on every message still waiting (each resolves with undefined). */
  clear(): void {
    for (const finish of [...this.waiting.values()]) finish(undefined);
  }

  /** Messages still waiting for their reply. */
  get size(): number {
    return this.waiting.size;
  }
}
