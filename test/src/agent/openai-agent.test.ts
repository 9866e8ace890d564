import { randomUUID } from 'node:crypto';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiAgent } from '../../../src/agent/openai-agent.ts';
import type { InboundMessage } from '../../../src/bus/messages.ts';
import { ManualClock } from '../../../src/clock.ts';
import { OpenAiAgentSchema } from '../../../src/config/agent-schema.ts';
import { HookRunner, type HookHandler } from '../../../src/hooks/runner.ts';
import type { HookName, HookPayload, Violation } from '../../../src/hooks/schemas.ts';
import { startFakeOpenAi, type FakeOpenAi } from '../../support/fake-openai-server.ts';
import { captureLogs } from '../support/logs.ts';

const CAP = 50;
const SYSTEM = 'Be brief.';
const KEY = 'sk-unit-secret-0123456789';

let fake: FakeOpenAi | undefined;
let agent: OpenAiAgent | undefined;
afterEach(async () => {
  await agent?.close();
  await fake?.close();
  agent = fake = undefined;
});

async function setup(config: Record<string, unknown> = {}, hookTimeoutMs = 1000) {
  fake = await startFakeOpenAi((body) => ({ text: `re: ${body.messages[body.messages.length - 1]!.content}` }));
  const logs = captureLogs();
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  const runner = new HookRunner(logs.logger, clock, hookTimeoutMs);
  const parsed = OpenAiAgentSchema.parse({
    kind: 'openai',
    base_url: fake.baseUrl,
    model: 'test-model',
    api_key_env: 'MODEL_KEY',
    system_prompt: SYSTEM,
    max_output_tokens: CAP,
    timeout_ms: 3000,
    ...config,
  });
  agent = new OpenAiAgent(parsed, { runner, logger: logs.logger, clock, configDir: process.cwd(), env: { MODEL_KEY: KEY } });
  await agent.start();
  const seen: { hook: HookName; payload: Record<string, unknown> }[] = [];
  const on = <N extends HookName>(hook: N, handler: HookHandler<N> = () => ({ continue: true }), onError: 'fail_open' | 'fail_closed' = 'fail_open') =>
    runner.register({
      plugin: 'probe',
      hook,
      handler: (payload: HookPayload<N>, call) => {
        seen.push({ hook, payload: payload as Record<string, unknown> });
        return handler(payload, call);
      },
      priority: 1,
      mode: 'enforce',
      onError,
    });
  const payloads = (hook: HookName) => seen.filter((s) => s.hook === hook).map((s) => s.payload);
  return { fake, agent, logs, on, payloads };
}

function message(text: string, fields: Partial<InboundMessage> = {}): InboundMessage {
  return { id: randomUUID(), channel: 'http', userId: 'alice', conversationId: 'c1', text, receivedAt: 0, ...fields };
}

/** The prompt's tokens as OpenAI counts chat prompts: 3 priming, and per message 3, its role and its content. */
const promptTokens = (...contents: [string, string][]) => 3 + contents.reduce((sum, [role, text]) => sum + 3 + countTokens(role) + countTokens(text), 0);

describe('OpenAiAgent: one prompt fetch per model call', () => {
  it('estimates the prompt counted with the tokenizer plus the output cap, and settles with the reported usage', async () => {
    const { fake, agent, on, payloads } = await setup();
    on('prePromptFetch');
    on('postPromptFetch');
    fake.queue({ text: 'Hi!', usage: { prompt_tokens: 17, completion_tokens: 2, total_tokens: 19 } });
    const reply = await agent.handle(message('Hello world, how are you?'));
    expect(reply).toMatchObject({ kind: 'answer', status: 200, text: 'Hi!' });
    expect(payloads('prePromptFetch')).toEqual([
      {
        prompt_id: 'chat',
        text: 'Hello world, how are you?',
        estimated_tokens: promptTokens(['system', SYSTEM], ['user', 'Hello world, how are you?']) + CAP,
        context: { message_id: expect.any(String), channel: 'http', user_id: 'alice', conversation_id: 'c1' },
      },
    ]);
    expect(payloads('postPromptFetch')).toEqual([{ prompt_id: 'chat', outcome: 'completed', actual_tokens: 19, context: expect.any(Object) }]);
  });

  it('without a usage chunk, settles with the prompt and the answer counted', async () => {
    const { fake, agent, on, payloads } = await setup({ system_prompt: undefined });
    on('postPromptFetch');
    fake.queue({ text: 'An answer of some length.', usage: null });
    await agent.handle(message('Question?'));
    expect(payloads('postPromptFetch')[0]).toMatchObject({ outcome: 'completed', actual_tokens: promptTokens(['user', 'Question?']) + countTokens('An answer of some length.') });
  });

  it("a refused prompt fetch answers with the plugin's refusal and never calls the model", async () => {
    const { fake, agent, on, payloads } = await setup();
    const violation: Violation = { code: 'too_fast', reason: 'r', description: 'Please wait 9 seconds.', httpStatus: 429, retryAfter: 9, headers: { 'x-probe': '1' }, details: {} };
    on('prePromptFetch', () => ({ continue: false, violation }));
    on('postPromptFetch');
    expect(await agent.handle(message('hi'))).toMatchObject({ kind: 'refused', status: 429, code: 'too_fast', text: 'Please wait 9 seconds.', retryAfter: 9 });
    expect(fake.requests).toHaveLength(0);
    expect(payloads('postPromptFetch')).toEqual([]);
  });

  it('a provider failure before any answer costs no tokens; a cut stream costs what was sent and received', async () => {
    const { fake, agent, on, payloads } = await setup({ system_prompt: undefined });
    on('postPromptFetch');
    fake.queue({ status: 429, retryAfter: '30' }, { cutAfter: 'Partial words' });
    expect(await agent.handle(message('hi'))).toMatchObject({ kind: 'error', status: 503, code: 'model_busy', retryAfter: 30 });
    expect(await agent.handle(message('hi'))).toMatchObject({ kind: 'error', status: 502, code: 'model_error' });
    expect(payloads('postPromptFetch').map((p) => [p.outcome, p.actual_tokens])).toEqual([
      ['failed', 0],
      ['failed', promptTokens(['user', 'hi']) + countTokens('Partial words')],
    ]);
  });

  it('a user who hangs up aborts the call, reported cancelled without tokens (everything reserved comes back)', async () => {
    const { fake, agent, on, payloads } = await setup();
    on('postPromptFetch');
    fake.queue({ text: 'a long, long answer', pieces: 30, delayMs: 100 });
    const client = new AbortController();
    const pending = agent.handle(message('hi', { signal: client.signal }));
    await fake.received(1);
    client.abort();
    expect(await pending).toMatchObject({ kind: 'error', code: 'cancelled' });
    await fake.requests[0]!.settled;
    expect(fake.requests[0]!.hungUp).toBe(true);
    expect(payloads('postPromptFetch')).toEqual([{ prompt_id: 'chat', outcome: 'cancelled', context: expect.any(Object) }]);
  });

  it('a hook that times out and is let through (fail_open) does not stop the model call', async () => {
    const { agent, on, payloads } = await setup({}, 100);
    on('prePromptFetch', () => new Promise(() => {}));
    on('postPromptFetch');
    expect(await agent.handle(message('still there?'))).toMatchObject({ kind: 'answer', text: 're: still there?' });
    expect(payloads('postPromptFetch')[0]).toMatchObject({ outcome: 'completed' });
  });

  it('logs a provider refusal once for the operator, without the key even when the provider quotes it', async () => {
    const { fake, agent, logs } = await setup();
    fake.queue(...Array.from({ length: 3 }, () => ({ status: 401, message: `Incorrect API key provided: ${KEY}.` })));
    for (let i = 0; i < 3; i++) expect(await agent.handle(message('hi'))).toMatchObject({ kind: 'error', status: 502, code: 'model_error', text: 'Sorry, something went wrong on our side. Please try again later.' });
    const lines = logs.withMessage('model call refused by the provider; check the agent config');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ failure: 'rejected', status: 401 });
    expect(String(lines[0]!.detail)).toContain('[redacted]');
    expect(JSON.stringify(logs.records())).not.toContain(KEY);
    expect(JSON.stringify(logs.records())).not.toContain('alice');
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
  });

  it('answers an internal error, not a crash, before it has started', async () => {
    const logs = captureLogs();
    const clock = new ManualClock(0);
    const idle = new OpenAiAgent(OpenAiAgentSchema.parse({ kind: 'openai', model: 'm' }), { runner: new HookRunner(logs.logger, clock, 1000), logger: logs.logger, clock, configDir: '.', env: {} });
    expect(await idle.handle(message('hi'))).toMatchObject({ kind: 'error', status: 500, code: 'internal_error' });
  });
});

describe('OpenAiAgent: tool calls it cannot run', () => {
  it('tells the model, as tool results, of tools that do not exist and of calls past the most run at once', async () => {
    const { fake, agent } = await setup();
    fake.queue({ toolCalls: Array.from({ length: 17 }, (_, i) => ({ name: `tool-${i}`, arguments: {} })) }, { text: 'done' });
    expect(await agent.handle(message('do everything'))).toMatchObject({ kind: 'answer', text: 'done' });
    const results = fake.requests[1]!.body.messages.filter((m) => m.role === 'tool').map((m) => m.content);
    expect(results).toHaveLength(17);
    expect(results[0]).toBe('There is no tool named "tool-0".');
    expect(results[16]).toBe('Not run: at most 16 tool calls are run at once; ask again for the rest.');
  });
});

describe('OpenAiAgent: conversations', () => {
  it('sends the recent exchanges of the conversation, bounded by history.turns', async () => {
    const { fake, agent } = await setup({ history: { turns: 2 } });
    for (const text of ['one', 'two', 'three']) await agent.handle(message(text));
    await agent.handle(message('four'));
    expect(fake.requests[3]!.body.messages.map((m) => m.content)).toEqual([SYSTEM, 'two', 're: two', 'three', 're: three', 'four']);
  });

  it('a failed call is not remembered', async () => {
    const { fake, agent } = await setup();
    fake.queue({ status: 500 });
    await agent.handle(message('lost'));
    await agent.handle(message('kept'));
    await agent.handle(message('next'));
    expect(fake.requests[2]!.body.messages.map((m) => m.content)).toEqual([SYSTEM, 'kept', 're: kept', 'next']);
  });
});
