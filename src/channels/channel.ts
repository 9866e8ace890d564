import { randomUUID } from 'node:crypto';
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
  /**
   * One short line of what the plugins would tell this user about themselves (their quota), for a
   * chat that shows a status line; '' when there is nothing to say. Counts against nothing.
   */
  statusLine?(who: Pick<InboundMessage, 'channel' | 'userId' | 'tenantId' | 'conversationId'>): Promise<string>;
}

export interface ChannelDeps {
  agent: Answerer;
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
 * A channel turns platform traffic into messages, asks the agent for their answers and gives each
 * answer back where its message came from. Subclasses implement the platform side.
 */
export abstract class Channel {
  abstract readonly name: string;
  protected readonly agent: Answerer;
  protected readonly logger: Logger;
  protected readonly clock: Clock;

  constructor(deps: ChannelDeps) {
    this.agent = deps.agent;
    this.logger = deps.logger;
    this.clock = deps.clock;
  }

  abstract start(): Promise<void>;
  /** Stops taking messages; resolves once those already taken are answered. */
  abstract stop(): Promise<void>;

  /** Builds a message from what the platform delivered. */
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
}
