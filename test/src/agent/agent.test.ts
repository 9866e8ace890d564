import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DemoAgent } from '../../../src/agent/agent.ts';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { ManualClock } from '../../../src/clock.ts';
import type { OnError } from '../../../src/config/schema.ts';
import { HookRunner, type HookHandler } from '../../../src/hooks/runner.ts';
import type { HookName, HookPayload, Violation } from '../../../src/hooks/schemas.ts';
import { captureLogs, LEVEL } from '../support/logs.ts';

const USAGE = '/echo <text>, /time, /wait <ms>, /search <words>';

function setup(clock = new ManualClock(Date.UTC(2024, 5, 30, 12, 0, 0))) {
  const logs = captureLogs();
  const runner = new HookRunner(logs.logger, clock, 1000);
  const agent = new DemoAgent({ runner, logger: logs.logger, clock });
  const seen: { hook: HookName; payload: unknown }[] = [];
  const on = <N extends HookName>(
    hook: N,
    handler: HookHandler<N>,
    options: { plugin?: string; onError?: OnError; mode?: 'enforce' | 'permissive' } = {},
  ): void => {
    runner.register({
      plugin: options.plugin ?? 'test',
      hook,
      handler: (payload: HookPayload<N>, call) => {
        seen.push({ hook, payload });
        return handler(payload, call);
      },
      priority: 1,
      mode: options.mode ?? 'enforce',
      onError: options.onError ?? 'fail_open',
    });
  };
  return { agent, runner, logs, clock, seen, on };
}

function message(text: string, fields: Partial<InboundMessage> = {}): InboundMessage {
  return {
    id: randomUUID(),
    channel: 'http',
    userId: 'alice',
    conversationId: randomUUID(),
    text,
    receivedAt: 0,
    ...fields,
  };
}

const slowDown: Violation = {
  code: 'rate_limited',
  reason: 'user over 30/m',
  description: 'Please wait 12 seconds.',
  httpStatus: 429,
  headers: { 'retry-after': '12' },
  retryAfter: 12,
  details: {},
};

describe('DemoAgent: answers', () => {
  it('answers plain text with what was said and the command list', async () => {
    const { agent } = setup();
    const m = message('hello bot');
    expect(await agent.handle(m)).toEqual({
      messageId: m.id,
      channel: 'http',
      conversationId: m.conversationId,
      kind: 'answer',
      status: 200,
      text: `You said: hello bot\nTry ${USAGE}.`,
      headers: {},
      silent: false,
    });
  });

  it('/echo returns the text after the command', async () => {
    const { agent } = setup();
    expect((await agent.handle(message('/echo   Hello,   world  '))).text).toBe('Hello,   world');
  });

  it('/time tells the time of the injected clock', async () => {
    const clock = new ManualClock(Date.UTC(2024, 0, 2, 3, 4, 5));
    const { agent } = setup(clock);
    expect((await agent.handle(message('/time'))).text).toBe('It is 2024-01-02T03:04:05.000Z.');
    clock.advance(61_000);
    expect((await agent.handle(message('/time'))).text).toBe('It is 2024-01-02T03:05:06.000Z.');
  });

  it('/search returns matching documents, best match first, at most three', async () => {
    const { agent } = setup();
    expect((await agent.handle(message('/search token bucket'))).text).toBe(
      'Token buckets: A token bucket refills at a steady rate and allows short bursts up to its capacity.',
    );
    const many = (await agent.handle(message('/search window'))).text.split('\n');
    expect(many.map((line) => line.split(':')[0])).toEqual(['Sliding windows', 'Fixed windows']);
    const capped = (await agent.handle(message('/search a'))).text.split('\n');
    expect(capped).toHaveLength(3);
  });

  it('/search says when nothing matches, and asks for words when given none', async () => {
    const { agent } = setup();
    expect((await agent.handle(message('/search zebra'))).text).toBe('Nothing found for "zebra".');
    expect((await agent.handle(message('/search'))).text).toBe('Tell me what to look for: /search <words>.');
  });

  it('commands are case-insensitive', async () => {
    const { agent } = setup();
    expect((await agent.handle(message('/ECHO loud'))).text).toBe('loud');
  });

  it('answers an unknown command with the command list, without invoking a tool', async () => {
    const { agent, on, seen } = setup();
    on('preToolInvoke', () => ({ continue: true }));
    const reply = await agent.handle(message('/dance now'));
    expect(reply.kind).toBe('answer');
    expect(reply.text).toBe(`I don't know the command /dance. Try ${USAGE}.`);
    expect(seen).toEqual([]);
  });
});

describe('DemoAgent: hooks', () => {
  it('runs prePromptFetch with the message text and its context', async () => {
    const { agent, on, seen } = setup();
    on('prePromptFetch', () => ({ continue: true }));
    const m = message('hi', { tenantId: 'acme', channel: 'cli' });
    await agent.handle(m);
    expect(seen).toEqual([
      {
        hook: 'prePromptFetch',
        payload: {
          prompt_id: 'chat',
          text: 'hi',
          // One token per 4 characters, twice: the prompt and an answer as long.
          estimated_tokens: 2,
          context: { message_id: m.id, channel: 'cli', user_id: 'alice', tenant_id: 'acme', conversation_id: m.conversationId },
        },
      },
    ]);
  });

  it('leaves tenant_id out of the context when the message has none', async () => {
    const { agent, on, seen } = setup();
    on('prePromptFetch', () => ({ continue: true }));
    await agent.handle(message('hi'));
    expect((seen[0]!.payload as { context: object }).context).not.toHaveProperty('tenant_id');
  });

  it('runs preToolInvoke with the canonical tool name and parsed args, after prePromptFetch', async () => {
    const { agent, on, seen } = setup();
    on('prePromptFetch', () => ({ continue: true }));
    on('preToolInvoke', () => ({ continue: true }));
    await agent.handle(message('/SeArCh  rate limits '));
    expect(seen.map((s) => s.hook)).toEqual(['prePromptFetch', 'preToolInvoke']);
    expect(seen[1]!.payload).toMatchObject({ tool: 'search', args: { query: 'rate limits' } });
  });

  it('does not run preToolInvoke for plain text', async () => {
    const { agent, on, seen } = setup();
    on('preToolInvoke', () => ({ continue: true }));
    await agent.handle(message('just chatting'));
    expect(seen).toEqual([]);
  });

  it('a prePromptFetch refusal becomes the reply and stops before the tool hook', async () => {
    const { agent, on, seen } = setup();
    on('prePromptFetch', () => ({ continue: false, violation: { ...slowDown, silent: true } }));
    on('preToolInvoke', () => ({ continue: true }));
    const m = message('/echo hi');
    expect(await agent.handle(m)).toEqual({
      messageId: m.id,
      channel: 'http',
      conversationId: m.conversationId,
      kind: 'refused',
      status: 429,
      code: 'rate_limited',
      text: 'Please wait 12 seconds.',
      headers: { 'retry-after': '12' },
      retryAfter: 12,
      silent: true,
    } satisfies OutboundReply);
    expect(seen.map((s) => s.hook)).toEqual(['prePromptFetch']);
  });

  it('a preToolInvoke refusal stops the tool', async () => {
    const { agent, on } = setup();
    on('preToolInvoke', (payload) =>
      payload.tool === 'search'
        ? { continue: false, violation: { ...slowDown, code: 'tool_limited', retryAfter: undefined, details: {} } }
        : { continue: true },
    );
    const refused = await agent.handle(message('/search windows'));
    expect(refused).toMatchObject({ kind: 'refused', code: 'tool_limited', status: 429, silent: false });
    expect(refused).not.toHaveProperty('retryAfter');
    expect((await agent.handle(message('/echo fine'))).text).toBe('fine');
  });

  it('carries headers from both hooks onto the answer', async () => {
    const { agent, on } = setup();
    on('prePromptFetch', () => ({ continue: true, headers: { 'x-prompt': 'p', 'x-shared': 'prompt' } }));
    on('preToolInvoke', () => ({ continue: true, headers: { 'x-tool': 't', 'x-shared': 'tool' } }));
    expect((await agent.handle(message('/echo x'))).headers).toEqual({ 'x-prompt': 'p', 'x-tool': 't', 'x-shared': 'tool' });
    expect((await agent.handle(message('plain'))).headers).toEqual({ 'x-prompt': 'p', 'x-shared': 'prompt' });
  });

  it('a fail_closed plugin failure refuses with 503', async () => {
    const { agent, on } = setup();
    on(
      'prePromptFetch',
      () => {
        throw new Error('store down');
      },
      { onError: 'fail_closed' },
    );
    expect(await agent.handle(message('hi'))).toMatchObject({ kind: 'refused', status: 503, code: 'plugin_unavailable' });
  });
});

describe('DemoAgent: failures', () => {
  it('answers 500 "error" instead of throwing when the hook runner fails, and logs it', async () => {
    const { agent, on, seen, logs } = setup();
    on('prePromptFetch', () => ({ continue: true }));
    // A payload the runner refuses to hand to plugins: run() throws.
    const m = message(42 as unknown as string);
    const reply = await agent.handle(m);
    expect(reply).toEqual({
      messageId: m.id,
      channel: 'http',
      conversationId: m.conversationId,
      kind: 'error',
      status: 500,
      code: 'internal_error',
      text: 'Sorry, something went wrong on our side. Please try again.',
      headers: {},
      silent: false,
    });
    expect(seen).toEqual([]);
    expect(reply.text).not.toContain('payload');
    const errors = logs.records().filter((r) => r.level === LEVEL.error);
    expect(errors).toEqual([expect.objectContaining({ msg: 'message handling failed', channel: 'http' })]);
    expect(String(errors[0]!.err_message)).toContain('invalid prePromptFetch payload');
  });
});

describe('DemoAgent: postPromptFetch and cancellation', () => {
  function recordingPost(on: ReturnType<typeof setup>['on']) {
    const posts: HookPayload<'postPromptFetch'>[] = [];
    on('postPromptFetch', (payload) => {
      posts.push(payload);
      return { continue: true };
    });
    return posts;
  }

  it('reports a completed call with its actual tokens: prompt and answer, one token per 4 characters', async () => {
    const { agent, on } = setup();
    const posts = recordingPost(on);
    const m = message('/echo abcdefgh');
    const reply = await agent.handle(m);
    expect(reply.text).toBe('abcdefgh');
    expect(posts).toEqual([
      {
        prompt_id: 'chat',
        outcome: 'completed',
        // "/echo abcdefgh" is 14 characters (4 tokens), "abcdefgh" 8 (2 tokens).
        actual_tokens: 6,
        context: { message_id: m.id, channel: 'http', user_id: 'alice', conversation_id: m.conversationId },
      },
    ]);
  });

  it('does not report a call that prePromptFetch refused', async () => {
    const { agent, on } = setup();
    on('prePromptFetch', () => ({ continue: false, violation: slowDown }));
    const posts = recordingPost(on);
    expect((await agent.handle(message('hi'))).kind).toBe('refused');
    expect(posts).toEqual([]);
  });

  it('a call whose tool step was refused still ran: it is reported completed, with its tokens', async () => {
    const { agent, on } = setup();
    const posts = recordingPost(on);
    on('preToolInvoke', () => {
      throw new Error('boom');
    }, { onError: 'fail_closed' });
    expect((await agent.handle(message('/time'))).code).toBe('plugin_unavailable');
    expect(posts.map((p) => [p.outcome, p.actual_tokens])).toEqual([['completed', expect.any(Number)]]);
  });

  it('a client that goes away mid-call stops the call: reported cancelled, and the hooks\' signal aborts', async () => {
    const { agent, on } = setup();
    const posts = recordingPost(on);
    let hookSignal: AbortSignal | undefined;
    on('prePromptFetch', (_payload, call) => {
      hookSignal = call?.signal;
      return { continue: true };
    });
    const client = new AbortController();
    const handled = agent.handle(message('/wait 10000', { signal: client.signal }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(hookSignal?.aborted).toBe(false);
    client.abort();
    const reply = await handled;
    expect(reply.text).toBe('Stopped waiting.');
    expect(posts.map((p) => [p.outcome, p.actual_tokens])).toEqual([['cancelled', undefined]]);
    expect(hookSignal?.aborted).toBe(true);
  });

  it('the hooks\' signal also aborts when the message is done, so nothing a hook holds outlives it', async () => {
    const { agent, on } = setup();
    let hookSignal: AbortSignal | undefined;
    on('prePromptFetch', (_payload, call) => {
      hookSignal = call?.signal;
      return { continue: true };
    });
    await agent.handle(message('hi'));
    expect(hookSignal?.aborted).toBe(true);
  });

  it('/wait answers after the time asked, capped at 10 s', async () => {
    const { agent } = setup();
    expect((await agent.handle(message('/wait 5'))).text).toBe('Waited 5 ms.');
    expect((await agent.handle(message('/wait nonsense'))).text).toBe('Waited 0 ms.');
  });
});
