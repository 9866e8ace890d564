import { describe, expect, it } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { PendingReplies } from '../../../src/channels/pending-replies.ts';

function message(id: string): InboundMessage {
  return { id, channel: 'test', userId: 'u', conversationId: 'c', text: 't', receivedAt: 0 };
}

function replyTo(m: InboundMessage, text = 'ok'): OutboundReply {
  return { messageId: m.id, channel: m.channel, conversationId: m.conversationId, kind: 'answer', status: 200, text, headers: {}, silent: false };
}

describe('PendingReplies', () => {
  it('resolves with the reply to the message asked, even when it comes back during publish', async () => {
    const replies: PendingReplies = new PendingReplies({ timeoutMs: 5_000, publish: (m) => replies.deliver(replyTo(m, `re ${m.id}`)) });
    await expect(replies.ask(message('a'))).resolves.toMatchObject({ messageId: 'a', text: 're a' });
    expect(replies.size).toBe(0);
  });

  it('matches replies to their messages whatever order they arrive in', async () => {
    const published: InboundMessage[] = [];
    const replies = new PendingReplies({ timeoutMs: 5_000, publish: (m) => published.push(m) });
    const first = replies.ask(message('1'));
    const second = replies.ask(message('2'));
    expect(replies.deliver(replyTo(published[1]!, 'two'))).toBe(true);
    expect(replies.deliver(replyTo(published[0]!, 'one'))).toBe(true);
    expect((await first)?.text).toBe('one');
    expect((await second)?.text).toBe('two');
  });

  it('resolves with undefined after the timeout, and refuses the late reply', async () => {
    const replies = new PendingReplies({ timeoutMs: 20, publish: () => {} });
    const m = message('late');
    await expect(replies.ask(m)).resolves.toBeUndefined();
    expect(replies.deliver(replyTo(m))).toBe(false);
    expect(replies.size).toBe(0);
  });

  it('stops waiting as soon as the signal aborts (the client left)', async () => {
    const replies = new PendingReplies({ timeoutMs: 60_000, publish: () => {} });
    const controller = new AbortController();
    const waiting = replies.ask(message('gone'), controller.signal);
    expect(replies.size).toBe(1);
    controller.abort();
    await expect(waiting).resolves.toBeUndefined();
    expect(replies.size).toBe(0);
  });

  it('does not wait at all on an already aborted signal, but still publishes', async () => {
    const published: InboundMessage[] = [];
    const replies = new PendingReplies({ timeoutMs: 60_000, publish: (m) => published.push(m) });
    await expect(replies.ask(message('x'), AbortSignal.abort())).resolves.toBeUndefined();
    expect(published).toHaveLength(1);
    expect(replies.size).toBe(0);
  });

  it('clear() gives up on every waiting message', async () => {
    const replies = new PendingReplies({ timeoutMs: 60_000, publish: () => {} });
    const waits = [replies.ask(message('a')), replies.ask(message('b'))];
    replies.clear();
    await expect(Promise.all(waits)).resolves.toEqual([undefined, undefined]);
    expect(replies.size).toBe(0);
  });
});
