import { describe, expect, it } from 'vitest';
import { Conversations, type HistoryLimits } from '../../../src/agent/conversations.ts';
import type { InboundMessage } from '../../../src/bus/messages.ts';
import { ManualClock } from '../../../src/clock.ts';

const LIMITS: HistoryLimits = { turns: 3, max_conversations: 100, max_chars: 10_000, idle_ms: 60_000 };

function setup(limits: Partial<HistoryLimits> = {}) {
  const clock = new ManualClock(1_000_000);
  return { clock, conversations: new Conversations({ ...LIMITS, ...limits }, clock) };
}

let next = 0;
function message(text: string, fields: Partial<InboundMessage> = {}): InboundMessage {
  return { id: `m${next++}`, channel: 'http', userId: 'alice', conversationId: 'c1', text, receivedAt: 0, ...fields };
}

const said = (conversations: Conversations, fields: Partial<InboundMessage> = {}) =>
  conversations.history(message('', fields)).filter((m) => m.role === 'user').map((m) => m.content);

describe('Conversations', () => {
  it('keeps exchanges as user and assistant messages, oldest first', () => {
    const { conversations } = setup();
    conversations.remember(message('hi'), 'hello!');
    conversations.remember(message('how are you?'), 'fine.');
    expect(conversations.history(message('next'))).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello!' },
      { role: 'user', content: 'how are you?' },
      { role: 'assistant', content: 'fine.' },
    ]);
  });

  it('keeps at most `turns` exchanges, dropping the oldest', () => {
    const { conversations } = setup({ turns: 2 });
    for (const text of ['one', 'two', 'three']) conversations.remember(message(text), `re ${text}`);
    expect(said(conversations)).toEqual(['two', 'three']);
  });

  it('keeps at most `max_chars` characters, dropping the oldest; an exchange larger than that is not kept', () => {
    const { conversations } = setup({ max_chars: 20 });
    conversations.remember(message('12345'), '12345');
    conversations.remember(message('abcde'), 'abcde');
    conversations.remember(message('vwxyz'), 'vwxyz');
    expect(said(conversations)).toEqual(['abcde', 'vwxyz']);
    conversations.remember(message('x'.repeat(15)), 'y'.repeat(15));
    expect(said(conversations)).toEqual([]);
  });

  it('belongs to its user, channel and tenant: the same conversation id elsewhere is another conversation', () => {
    const { conversations } = setup();
    conversations.remember(message('secret plans'), 'noted');
    expect(said(conversations, { userId: 'mallory' })).toEqual([]);
    expect(said(conversations, { channel: 'telegram' })).toEqual([]);
    expect(said(conversations, { tenantId: 'acme' })).toEqual([]);
    expect(said(conversations, { conversationId: 'c2' })).toEqual([]);
    // Ids that would run together if joined are told apart.
    conversations.remember(message('a', { userId: 'x', conversationId: 'y z' }), 'b');
    expect(said(conversations, { userId: 'x y', conversationId: 'z' })).toEqual([]);
    expect(said(conversations)).toEqual(['secret plans']);
  });

  it('forgets a conversation nobody wrote in for idle_ms', () => {
    const { clock, conversations } = setup({ idle_ms: 60_000 });
    conversations.remember(message('hi'), 'hello');
    clock.advance(59_000);
    expect(said(conversations)).toEqual(['hi']);
    conversations.remember(message('still here'), 'yes');
    clock.advance(59_000);
    expect(said(conversations)).toEqual(['hi', 'still here']);
    clock.advance(1_000);
    expect(said(conversations)).toEqual([]);
  });

  it('holds at most max_conversations; a full map evicts one not used lately, not a busy one', () => {
    const { conversations } = setup({ max_conversations: 3 });
    conversations.remember(message('busy', { conversationId: 'busy' }), 'ok');
    for (let i = 0; i < 10; i++) {
      // The busy conversation is read on every message; one-off conversations come and go.
      said(conversations, { conversationId: 'busy' });
      conversations.remember(message(`once ${i}`, { conversationId: `once-${i}` }), 'ok');
      expect(conversations.size).toBeLessThanOrEqual(3);
    }
    expect(said(conversations, { conversationId: 'busy' })).toEqual(['busy']);
    expect(said(conversations, { conversationId: 'once-0' })).toEqual([]);
  });

  it('turns: 0 keeps nothing', () => {
    const { conversations } = setup({ turns: 0 });
    conversations.remember(message('hi'), 'hello');
    expect(conversations.size).toBe(0);
    expect(said(conversations)).toEqual([]);
  });
});
