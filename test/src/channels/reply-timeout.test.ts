import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { ReplyTimeout } from '../../../src/channels/reply-timeout.ts';
import { fakeAgent, held } from '../support/agent.ts';

function message(id: string): InboundMessage {
  return { id, channel: 'test', userId: 'u', conversationId: 'c', text: id, receivedAt: 0 };
}

function replyTo(m: InboundMessage, text = 'ok'): OutboundReply {
  return { messageId: m.id, channel: m.channel, conversationId: m.conversationId, kind: 'answer', status: 200, text, headers: {}, silent: false };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ReplyTimeout', () => {
  it('resolves with the answer, asking the agent with the controller\'s signal', async () => {
    const agent = fakeAgent((m) => replyTo(m, `re ${m.id}`));
    const waits = new ReplyTimeout(5_000);
    const controller = new AbortController();
    await expect(waits.ask(agent, message('a'), controller)).resolves.toMatchObject({ messageId: 'a', text: 're a' });
    expect(agent.signals).toEqual([controller.signal]);
    expect(controller.signal.aborted).toBe(false);
    expect(waits.waiting).toBe(0);
  });

  it('gives each message its own answer, whatever order the agent finishes them in', async () => {
    const answers = new Map<string, (reply: OutboundReply) => void>();
    const agent = fakeAgent((m) => {
      const later = held<OutboundReply>();
      answers.set(m.id, later.resolve);
      return later.promise;
    });
    const waits = new ReplyTimeout(5_000);
    const first = waits.ask(agent, message('1'), new AbortController());
    const second = waits.ask(agent, message('2'), new AbortController());
    expect(waits.waiting).toBe(2);
    answers.get('2')!(replyTo(message('2'), 'two'));
    answers.get('1')!(replyTo(message('1'), 'one'));
    expect((await first)?.text).toBe('one');
    expect((await second)?.text).toBe('two');
    expect(waits.waiting).toBe(0);
  });

  it('resolves with undefined after the timeout, aborts the agent\'s signal, and ignores the late answer', async () => {
    const late = held<OutboundReply>();
    const waits = new ReplyTimeout(20);
    const controller = new AbortController();
    const m = message('late');
    await expect(waits.ask(fakeAgent(() => late.promise), m, controller)).resolves.toBeUndefined();
    expect(controller.signal.aborted).toBe(true);
    expect(waits.waiting).toBe(0);
    late.resolve(replyTo(m));
    await sleep(0);
    expect(waits.waiting).toBe(0);
  });

  it('times out every message in turn with one timer, each its full time after it was asked', async () => {
    const waits = new ReplyTimeout(100);
    const agent = fakeAgent();
    const ended: { id: string; ms: number }[] = [];
    const asks: Promise<unknown>[] = [];
    for (const id of ['a', 'b', 'c']) {
      const asked = performance.now();
      asks.push(waits.ask(agent, message(id), new AbortController()).then(() => ended.push({ id, ms: performance.now() - asked })));
      if (id !== 'c') await sleep(30);
    }
    await Promise.all(asks);
    expect(ended.map((e) => e.id)).toEqual(['a', 'b', 'c']);
    // b and c were not given up with a, when the timer first fired: each had its own deadline.
    for (const { ms } of ended) expect(ms).toBeGreaterThanOrEqual(99);
    expect(waits.waiting).toBe(0);
  });

  it('waits out a timeout longer than setTimeout takes (about 24.8 days), on one timer', async () => {
    const timers = vi.spyOn(globalThis, 'setTimeout');
    onTestFinished(() => timers.mockRestore());
    const waits = new ReplyTimeout(30 * 24 * 3600 * 1000);
    const controller = new AbortController();
    const waiting = waits.ask(fakeAgent(), message('patient'), controller);
    await sleep(20);
    expect(waits.waiting).toBe(1);
    expect(controller.signal.aborted).toBe(false);
    // Set once, for as long as setTimeout takes: a longer delay would fire at once, again and again.
    expect(timers.mock.calls.map(([, ms]) => ms).filter((ms) => ms !== 20)).toEqual([2 ** 31 - 1]);
    waits.clear();
    await expect(waiting).resolves.toBeUndefined();
  });

  it('stops waiting as soon as the client\'s signal aborts (the client left), aborting the agent\'s too', async () => {
    const waits = new ReplyTimeout(60_000);
    const client = new AbortController();
    const controller = new AbortController();
    const waiting = waits.ask(fakeAgent(), message('gone'), controller, client.signal);
    expect(waits.waiting).toBe(1);
    client.abort();
    await expect(waiting).resolves.toBeUndefined();
    expect(controller.signal.aborted).toBe(true);
    expect(waits.waiting).toBe(0);
  });

  it('aborts the agent\'s signal once the client\'s does after the answer (the request is over)', async () => {
    const waits = new ReplyTimeout(60_000);
    const client = new AbortController();
    const controller = new AbortController();
    await expect(waits.ask(fakeAgent((m) => replyTo(m)), message('done'), controller, client.signal)).resolves.toMatchObject({ text: 'ok' });
    expect(controller.signal.aborted).toBe(false);
    client.abort();
    expect(controller.signal.aborted).toBe(true);
  });

  it('does not wait at all on a client already gone, but still asks the agent', async () => {
    const agent = fakeAgent((m) => replyTo(m));
    const waits = new ReplyTimeout(60_000);
    const controller = new AbortController();
    await expect(waits.ask(agent, message('x'), controller, AbortSignal.abort())).resolves.toBeUndefined();
    expect(agent.received).toHaveLength(1);
    expect(controller.signal.aborted).toBe(true);
    expect(waits.waiting).toBe(0);
  });

  it('rejects when the agent fails, whether it rejects or throws', async () => {
    const waits = new ReplyTimeout(60_000);
    const rejecting = fakeAgent(() => Promise.reject(new Error('rejected')));
    await expect(waits.ask(rejecting, message('r'), new AbortController())).rejects.toThrow('rejected');
    const throwing = {
      answer(): Promise<OutboundReply> {
        throw new Error('thrown');
      },
    };
    await expect(waits.ask(throwing, message('t'), new AbortController())).rejects.toThrow('thrown');
    expect(waits.waiting).toBe(0);
  });

  it('clear() gives up on every waiting message and aborts their agents\' signals', async () => {
    const waits = new ReplyTimeout(60_000);
    const controllers = [new AbortController(), new AbortController()];
    const asks = controllers.map((controller, i) => waits.ask(fakeAgent(), message(String(i)), controller));
    waits.clear();
    await expect(Promise.all(asks)).resolves.toEqual([undefined, undefined]);
    expect(controllers.map((c) => c.signal.aborted)).toEqual([true, true]);
    expect(waits.waiting).toBe(0);
  });
});
