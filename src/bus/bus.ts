import { EventEmitter } from 'eventemitter3';
import type { InboundMessage, OutboundReply } from './messages.ts';

/**
 * Facts that happened; listeners cannot veto them (that is what hooks are for), and nothing is
 * delivered through them: a channel awaits its message's answer from the agent directly. Plugins add
 * their own events to this map by declaration merging (see plugin-sdk.ts).
 */
export interface BusEvents {
  /** A channel took a message and asked for its answer. */
  'message:in': [message: InboundMessage];
  /** The agent answered a message (whether or not its channel still waited for the answer). */
  'message:out': [reply: OutboundReply];
}

/** A typed, fire-and-forget event bus, for observers (logs, metrics, tests). */
export class MessageBus extends EventEmitter<BusEvents> {}
