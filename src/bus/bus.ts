import { EventEmitter } from 'eventemitter3';
import type { InboundMessage, OutboundReply } from './messages.ts';

/**
 * Facts that happened; listeners cannot veto them (that is what hooks are for). Plugins add their own
 * events to this map by declaration merging (see plugin-sdk.ts).
 */
export interface BusEvents {
  'message:in': [message: InboundMessage];
  'message:out': [reply: OutboundReply];
}

/** A typed, fire-and-forget event bus. */
export class MessageBus extends EventEmitter<BusEvents> {}
