import type { InboundMessage } from '../bus/messages.ts';
import type { Clock } from '../clock.ts';
import { ExpiringMap, type Expiring } from '../util/expiring-map.ts';
import type { ChatMessage } from './chat.ts';

export interface HistoryLimits {
  /** Exchanges kept per conversation (0: none). */
  turns: number;
  max_conversations: number;
  /** Characters kept per conversation, both sides of every exchange together. */
  max_chars: number;
  /** How long a conversation nobody writes in is kept. */
  idle_ms: number;
}

/** A user's message and the answer it got. */
interface Exchange {
  user: string;
  assistant: string;
}

interface Conversation extends Expiring {
  exchanges: Exchange[];
  chars: number;
}

/**
 * The recent exchanges of each conversation, so a model sees what was said before. Bounded three
 * ways: exchanges and characters per conversation (the oldest go first), and conversations in all
 * (idle ones expire, and past the cap the least recently used is evicted, as the plugins' keys
 * are). A conversation belongs to its user: the same conversation id from another user, channel or
 * tenant is another conversation, so nobody reads someone else's history by guessing an id.
 */
export class Conversations {
  private readonly map: ExpiringMap<Conversation>;

  constructor(
    private readonly limits: HistoryLimits,
    private readonly clock: Clock,
  ) {
    this.map = new ExpiringMap(limits.max_conversations);
  }

  get size(): number {
    return this.map.size;
  }

  /** The conversation so far, oldest first, as chat messages. */
  history(message: InboundMessage): ChatMessage[] {
    if (this.limits.turns === 0) return [];
    const key = conversationKey(message);
    const conversation = this.map.get(key, this.clock.now());
    if (conversation === undefined) return [];
    this.map.touch(key, conversation);
    const messages: ChatMessage[] = [];
    for (const { user, assistant } of conversation.exchanges) {
      messages.push({ role: 'user', content: user }, { role: 'assistant', content: assistant });
    }
    return messages;
  }

  /** Adds an exchange that ended in an answer; the oldest go while the conversation is over its bounds. */
  remember(message: InboundMessage, answer: string): void {
    if (this.limits.turns === 0) return;
    const now = this.clock.now();
    const key = conversationKey(message);
    let conversation = this.map.get(key, now);
    if (conversation === undefined) {
      conversation = { exchanges: [], chars: 0, expiresAt: 0, used: false };
      this.map.set(key, conversation, now);
    } else {
      this.map.touch(key, conversation);
    }
    conversation.expiresAt = now + this.limits.idle_ms;
    conversation.exchanges.push({ user: message.text, assistant: answer });
    conversation.chars += message.text.length + answer.length;
    const { exchanges } = conversation;
    while (exchanges.length > this.limits.turns || (conversation.chars > this.limits.max_chars && exchanges.length > 0)) {
      const dropped = exchanges.shift()!;
      conversation.chars -= dropped.user.length + dropped.assistant.length;
    }
  }
}

/** Channel, tenant, user and conversation id, as given: a JSON list, so no two sets of parts make one key. */
function conversationKey(message: InboundMessage): string {
  return JSON.stringify([message.channel, message.tenantId ?? null, message.userId, message.conversationId]);
}
