import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelStream, retryAfterSeconds, type ModelSettings } from '../../../src/agent/model-stream.ts';
import { startFakeOpenAi, type FakeOpenAi } from '../../support/fake-openai-server.ts';

const KEY = 'sk-test-0123456789abcdef';
const ASK = { messages: [{ role: 'user' as const, content: 'hi' }], tools: [] };

let fake: FakeOpenAi | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(settings: Partial<ModelSettings> = {}) {
  fake = await startFakeOpenAi();
  const model = new ModelStream({
    baseUrl: fake.baseUrl,
    apiKey: KEY,
    model: 'test-model',
    maxOutputTokens: 256,
    maxTokensField: 'max_tokens',
    timeoutMs: 5000,
    ...settings,
  });
  return { fake, model };
}

describe('ModelStream: answers', () => {
  it('streams a text answer with the reported usage, asking for usage, with the key and the output cap', async () => {
    const { fake, model } = await setup({ temperature: 0.2 });
    fake.queue({ text: 'Hello there, friend.', pieces: 4, usage: { prompt_tokens: 21, completion_tokens: 7, total_tokens: 28 } });
    const result = await model.complete(ASK, undefined);
    expect(result).toEqual({ kind: 'answer', text: 'Hello there, friend.', toolCalls: [], usage: { promptTokens: 21, completionTokens: 7, totalTokens: 28 }, finishReason: 'stop' });
    const [request] = fake.requests;
    expect(request!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(request!.body).toMatchObject({ model: 'test-model', stream: true, stream_options: { include_usage: true }, max_tokens: 256, temperature: 0.2 });
    expect(request!.body.messages).toEqual([{ role: 'user', content: 'hi' }]);
    expect(request!.body.tools).toBeUndefined();
  });

  it('puts streamed tool calls together; offers the tools and passes tool_choice only when asked', async () => {
    const { fake, model } = await setup({ maxTokensField: 'max_completion_tokens' });
    fake.queue({ toolCalls: [{ name: 'echo', arguments: { message: 'a "quoted" word' } }, { name: 'get-sum', arguments: { a: 2, b: 3 } }] });
    const tools = [{ type: 'function' as const, function: { name: 'echo', parameters: { type: 'object' } } }];
    const result = await model.complete({ ...ASK, tools }, undefined);
    expect(result.kind).toBe('answer');
    if (result.kind !== 'answer') return;
    expect(result.finishReason).toBe('tool_calls');
    expect(result.toolCalls.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ['echo', { message: 'a "quoted" word' }],
      ['get-sum', { a: 2, b: 3 }],
    ]);
    expect(new Set(result.toolCalls.map((c) => c.id)).size).toBe(2);
    expect(fake.requests[0]!.body).toMatchObject({ tools, max_completion_tokens: 256 });
    expect(fake.requests[0]!.body.tool_choice).toBeUndefined();
    expect(fake.requests[0]!.body.max_tokens).toBeUndefined();

    await model.complete({ ...ASK, tools, toolChoice: 'none' }, undefined);
    expect(fake.requests[1]!.body.tool_choice).toBe('none');
  });

  it('sends no Authorization header without a key, whatever OPENAI_API_KEY says', async () => {
    const { fake, model } = await setup({ apiKey: undefined });
    const saved = process.env.OPENAI_API_KEY;
    process.env.OPENAI_API_KEY = 'sk-from-the-environment';
    try {
      expect((await model.complete(ASK, undefined)).kind).toBe('answer');
    } finally {
      if (saved === undefined) delete process.env.OPENAI_API_KEY;
      else process.env.OPENAI_API_KEY = saved;
    }
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('an answer without a usage chunk has no usage (the caller counts it)', async () => {
    const { fake, model } = await setup();
    fake.queue({ text: 'no usage here', usage: null });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'answer', text: 'no usage here', usage: undefined });
  });
});

describe('ModelStream: failures are results, never throws, never retried', () => {
  it("the provider's 429 is `busy`, with its Retry-After in seconds", async () => {
    const { fake, model } = await setup();
    fake.queue({ status: 429, retryAfter: '7' });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'busy', status: 429, retryAfter: 7, partial: { reached: false } });
    expect(fake.requests).toHaveLength(1);
  });

  it('5xx is `unavailable`, another 4xx `rejected`; one request each', async () => {
    const { fake, model } = await setup();
    fake.queue({ status: 503 }, { status: 401 });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'unavailable', status: 503 });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'rejected', status: 401 });
    expect(fake.requests).toHaveLength(2);
  });

  it('a stream slower than timeout_ms, or one that stalls, is `timeout`, and the upstream connection is closed', async () => {
    const { fake, model } = await setup({ timeoutMs: 400 });
    fake.queue({ text: 'a very slow answer', pieces: 10, delayMs: 200 }, { stall: true });
    const started = performance.now();
    const slow = await model.complete(ASK, undefined);
    expect(slow).toMatchObject({ kind: 'failed', failure: 'timeout', partial: { reached: true } });
    if (slow.kind === 'failed') expect(slow.partial.text.length).toBeGreaterThan(0);
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'timeout' });
    expect(performance.now() - started).toBeLessThan(4000);
    await Promise.all(fake.requests.map((r) => r.settled));
    expect(fake.requests.map((r) => r.hungUp)).toEqual([true, true]);
  });

  it('a stream cut midway is `cut`, with the text that came', async () => {
    const { fake, model } = await setup();
    fake.queue({ cutAfter: 'The beginning of' });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'cut', partial: { reached: true, text: 'The beginning of' } });
  });

  it('a chunk that is not JSON is `malformed`', async () => {
    const { fake, model } = await setup();
    fake.queue({ malformed: true });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'malformed' });
  });

  it('a server that streams without end is stopped (`malformed`) before the answer fills the memory', async () => {
    const { fake, model } = await setup();
    fake.queue({ text: 'x'.repeat(4_100_000), pieces: 100 });
    const result = await model.complete(ASK, undefined);
    expect(result).toMatchObject({ kind: 'failed', failure: 'malformed' });
    if (result.kind === 'failed') expect(result.detail).toContain('longer than 4000000 characters');
  });

  it('a server nobody listens on is `unavailable`', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const { model } = await setup({ baseUrl: `http://127.0.0.1:${port}/v1` });
    expect(await model.complete(ASK, undefined)).toMatchObject({ kind: 'failed', failure: 'unavailable', partial: { reached: false } });
  });

  it('the caller aborting mid-stream is `cancelled` and closes the upstream connection', async () => {
    const { fake, model } = await setup();
    fake.queue({ text: 'a long answer nobody waits for', pieces: 20, delayMs: 100 });
    const controller = new AbortController();
    const pending = model.complete(ASK, controller.signal);
    await fake.received(1);
    await new Promise((r) => setTimeout(r, 150));
    controller.abort();
    expect(await pending).toMatchObject({ kind: 'cancelled' });
    await fake.requests[0]!.settled;
    expect(fake.requests[0]!.hungUp).toBe(true);
  });

  it('a signal that has already aborted sends nothing', async () => {
    const { fake, model } = await setup();
    expect(await model.complete(ASK, AbortSignal.abort())).toMatchObject({ kind: 'cancelled' });
    expect(fake.requests).toHaveLength(0);
  });
});

describe('retryAfterSeconds', () => {
  const headers = (entries: Record<string, string>) => new Headers(entries);
  it('reads seconds, milliseconds and HTTP dates, rounding up and capping at a day', () => {
    expect(retryAfterSeconds(headers({ 'retry-after': '12' }))).toBe(12);
    expect(retryAfterSeconds(headers({ 'retry-after': '1.2' }))).toBe(2);
    expect(retryAfterSeconds(headers({ 'retry-after-ms': '2500', 'retry-after': '60' }))).toBe(3);
    const now = Date.UTC(2030, 0, 1, 12, 0, 0);
    expect(retryAfterSeconds(headers({ 'retry-after': new Date(now + 90_000).toUTCString() }), now)).toBe(90);
    expect(retryAfterSeconds(headers({ 'retry-after': '999999999' }))).toBe(86_400);
    expect(retryAfterSeconds(headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterSeconds(headers({}))).toBeUndefined();
  });
});
