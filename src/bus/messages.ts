/** A message as a channel received it, before any plugin or agent has looked at it. */
export interface InboundMessage {
  /** Unique per message; its reply carries it too (for observers of the bus and the logs). */
  id: string;
  /** Which channel it came from (`http`, `cli`, ...): plugins key their state by it. */
  channel: string;
  /** The platform's user id, as received. Sensitive: keys only, never logs. */
  userId: string;
  tenantId?: string;
  conversationId: string;
  text: string;
  receivedAt: number;
  /**
   * Aborts when nobody waits for the answer any more: the client went away, or its channel stopped
   * waiting (the reply timeout). In-process only.
   */
  signal?: AbortSignal;
}

export type ReplyKind = 'answer' | 'refused' | 'error';

/** What goes back to the channel the message came from. */
export interface OutboundReply {
  messageId: string;
  channel: string;
  conversationId: string;
  kind: ReplyKind;
  text: string;
  /** HTTP-style status: 200 for answers, the violation's status when refused. */
  status: number;
  /** Machine-readable code for refusals and errors (a violation's code, `internal_error`, ...). */
  code?: string;
  /** Headers a request/response channel should attach (the plugins' headers, Retry-After). */
  headers: Record<string, string>;
  /** Seconds until a refused request would be admitted, when known. */
  retryAfter?: number;
  /** True when a chat channel should not post this reply (see Violation.silent). Request/response channels still answer. */
  silent: boolean;
}
