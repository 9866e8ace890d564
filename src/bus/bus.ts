import { EventEmitter } from 'eventemitter3';
import type { InboundMessage, OutboundReply } from './messages.ts';
import type { RateLimitEvents } from './rate-limit-events.ts';

/** Facts that happened; listeners cannot veto them (that is what hooks are for). */
export interface BusEvents extends RateLimitEvents {
  'message:in': [message: InboundMessage];
  'message:out': [reply: OutboundReply];
}

/** A typed, fire-and-forget event bus. */
export class MessageBus extends EventEmitter<BusEvents> {}
