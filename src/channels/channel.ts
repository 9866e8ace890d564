import { randomUUID } from 'node:crypto';
import type { MessageBus } from '../bus/bus.ts';
import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';

/** What a channel asks for a message's answer: the agent, as the gateway hands it over. */
export interface Answerer {
  /**
   * The answer to `message`. `signal` aborts when nobody waits for it any more (the client went away,
   * the channel gave up on it): the agent and its hooks stop, and let go of what they hold for it.
   * The gateway's never rejects: a failure is answered as an error reply.
   */
  answer(message: InboundMessage, signal?: AbortSignal): Promise<OutboundReply>;
}

export interface ChannelDeps {
  bus: MessageBus;
  logger: Logger;
  clock: Clock;
}

export interface InboundFields {
  userId: string;
  tenantId?: string;
  conversationId?: string;
  text: string;
}

/**
 * A channel turns platform traffic into messages on the bus and delivers the replies addressed to it.
 * Subclasses implement the platform side; publishing is shared.
 */
export abstract class Channel {
  abstract readonly name: string;
  protected readonly bus: MessageBus;
  protected readonly logger: Logger;
  protected readonly clock: Clock;

  constructor(deps: ChannelDeps) {
    this.bus = deps.bus;
    this.logger = deps.logger;
    this.clock = deps.clock;
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
  /** Delivers a reply to the message it answers. */
  abstract send(reply: OutboundReply): void;

  /** Builds a message from what the platform delivered; its id is what the reply will carry. */
  protected compose(fields: InboundFields): InboundMessage {
    const message: InboundMessage = {
      id: randomUUID(),
      channel: this.name,
      userId: fields.userId,
      conversationId: fields.conversationId ?? randomUUID(),
      text: fields.text,
      receivedAt: this.clock.now(),
    };
    if (fields.tenantId !== undefined) message.tenantId = fields.tenantId;
    return message;
  }

  protected publish(message: InboundMessage): void {
    this.bus.emit('message:in', message);
  }
}
