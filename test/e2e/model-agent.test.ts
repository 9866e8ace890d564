import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { everythingOverStdio, mcpTestsEnabled } from '../hosts/mcp/support.ts';
import { startFakeOpenAi, type ChatBody, type FakeOpenAi, type Script } from '../support/fake-openai-server.ts';
import { gatewayConfig, rateLimiterEntry, sendMessage, spawnGateway, startGateway, writeConfig, type RunningGateway } from './support/gateway-process.ts';

/**
 * The model agent through real gateway processes: the model is a local OpenAI-compatible server (the
 * one stand-in), the tools come from the real MCP "everything" server over stdio, the limits from
 * the real rate-limiter plugin.
 */
const enabled = mcpTestsEnabled();

const TOKEN = 'operator-token-0123456789';
const KEY_ENV = 'FLOODGATE_TEST_MODEL_KEY';
const KEY = 'sk-e2e-do-not-log-7f3a9c21';
const USER = 'Model.User@Example.com';
const SYSTEM = 'You are a helpful test assistant.';
const CAP = 100;

const last = (body: ChatBody) => body.messages[body.messages.length - 1]!;

/**
 * The stand-in model: "echo: <words>" asks for the echo tool, "sum a b" for get-sum; a tool result
 * is answered by quoting it; anything else by repeating the user's words.
 */
function model(body: ChatBody): Script {
  const message = last(body);
  if (message.role === 'tool') return { text: `Tool said: ${message.content}` };
  const text = message.content ?? '';
  const echo = /echo: (.*)$/.exec(text);
  if (echo) return { toolCalls: [{ name: 'echo', arguments: { message: echo[1] } }] };
  const sum = /sum (\d+) (\d+)/.exec(text);
  if (sum) return { toolCalls: [{ name: 'get-sum', arguments: { a: Number(sum[1]), b: Number(sum[2]) } }] };
  return { text: `You said: ${text}` };
}

let fake: FakeOpenAi;
let gateway: RunningGateway | undefined;
beforeAll(async () => {
  fake = await startFakeOpenAi(model);
});
afterAll(() => fake.close());
afterEach(async () => {
  if (gateway !== undefined) {
    await gateway.stop();
    // The API key was used (the model server saw it) and never written anywhere.
    expect(`${gateway.stdout.join('\n')}\n${gateway.stderr.join('\n')}`).not.toContain(KEY);
  }
  gateway = undefined;
  fake.requests.length = 0;
});

function agent(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'openai',
    base_url: fake.baseUrl,
    model: 'test-model',
    api_key_env: KEY_ENV,
    system_prompt: SYSTEM,
    max_output_tokens: CAP,
    timeout_ms: 5000,
    max_tool_rounds: 2,
    mcp_servers: [everythingOverStdio()],
    ...extra,
  };
}

async function start(limits: Record<string, unknown> | undefined, agentExtra: Record<string, unknown> = {}): Promise<RunningGateway> {
  const config = gatewayConfig(limits === undefined ? [] : [rateLimiterEntry(limits)]);
  (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
  config.agent = agent(agentExtra);
  gateway = await startGateway(config, { [KEY_ENV]: KEY });
  return gateway;
}

interface View {
  rules: { rule: string; used: number; remaining: number }[];
}

async function tokensUsed(url: string): Promise<{ used: number; remaining: number }> {
  const response = await fetch(`${url}/v1/admin/limits?${new URLSearchParams({ user_id: USER })}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const view = (await response.json()) as View;
  return view.rules.find((r) => r.rule === 'user-tokens')!;
}

const toolMessages = (f: FakeOpenAi) => f.requests.flatMap((r) => r.body.messages.filter((m) => m.role === 'tool').map((m) => m.content ?? ''));

describe.skipIf(!enabled)('the model agent in a real gateway', () => {
  it('a message leads to a model call, an MCP tool call and an answer; the conversation is remembered for its user only', async () => {
    const { url } = await start(undefined);
    const first = await sendMessage(url, { user_id: USER, conversation_id: 'conv-1', text: 'please echo: hello from mcp' });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ reply: 'Tool said: Echo: hello from mcp', conversation_id: 'conv-1' });

    expect(fake.requests).toHaveLength(2);
    const [ask, followUp] = fake.requests.map((r) => r.body);
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(ask!.messages).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'please echo: hello from mcp' },
    ]);
    expect(ask!.tools!.map((t) => t.function.name)).toEqual(['echo', 'get-sum']);
    expect(ask!.tools![0]!.function.parameters).toMatchObject({ type: 'object', properties: { message: { type: 'string' } } });
    expect(ask).toMatchObject({ stream: true, stream_options: { include_usage: true }, max_tokens: CAP });
    // The second call carries the model's tool call and the real server's result.
    expect(followUp!.messages[2]).toMatchObject({ role: 'assistant', tool_calls: [{ function: { name: 'echo' } }] });
    expect(followUp!.messages[3]).toMatchObject({ role: 'tool', content: 'Echo: hello from mcp', tool_call_id: followUp!.messages[2]!.tool_calls![0]!.id });

    const sum = await sendMessage(url, { user_id: USER, conversation_id: 'conv-1', text: 'sum 19 23' });
    expect(sum.body).toMatchObject({ reply: 'Tool said: The sum of 19 and 23 is 42.' });
    // The earlier exchange came along (the user's words and the final answer, not the tool traffic).
    expect(fake.requests[2]!.body.messages.slice(1, 3)).toEqual([
      { role: 'user', content: 'please echo: hello from mcp' },
      { role: 'assistant', content: 'Tool said: Echo: hello from mcp' },
    ]);

    // Someone else using the same conversation id starts afresh.
    await sendMessage(url, { user_id: 'someone-else', conversation_id: 'conv-1', text: 'hi' });
    expect(fake.requests[4]!.body.messages).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'hi' },
    ]);

    // The MCP server started with the gateway and stops with it.
    expect(gateway!.logs().find((l) => l.msg === 'mcp tools ready')).toMatchObject({ mcp_servers: ['everything'], tools: ['echo', 'get-sum'] });
    expect(await gateway!.stop()).toBe(0);
    expect(gateway!.logs().some((l) => l.msg === 'gateway stopped')).toBe(true);
  });

  it('a flood of calls to one tool is limited by by_tool, and the model reads why (which limit, when), no ids', async () => {
    const { url } = await start({ by_user: '100/m', by_tool: { echo: '2/m' } });
    for (const n of [1, 2]) {
      const ok = await sendMessage(url, { user_id: USER, text: `echo: call ${n}` });
      expect(ok.body).toMatchObject({ reply: `Tool said: Echo: call ${n}` });
    }
    const limited = await sendMessage(url, { user_id: USER, text: 'echo: call 3' });
    // The message itself is answered: the model was told and told the user.
    expect(limited.status).toBe(200);
    const told = toolMessages(fake)[2]!;
    expect(told).toMatch(/^The echo tool call was not run: it was refused \(rate_limited\)\./);
    expect(told).toContain('limit: 2/m');
    expect(told).toMatch(/It may be called again in \d+ seconds?, not before\./);
    expect(told.toLowerCase()).not.toContain('model.user');
    expect(limited.body.reply).toBe(`Tool said: ${told}`);
    // The other tool has the user's own limit and still runs.
    expect((await sendMessage(url, { user_id: USER, text: 'sum 1 2' })).body).toMatchObject({ reply: 'Tool said: The sum of 1 and 2 is 3.' });
  });

  it('a refused prompt fetch never reaches the model; the user gets the slow-down reply', async () => {
    const { url } = await start({ by_user: '1/m' });
    expect((await sendMessage(url, { user_id: USER, text: 'first' })).status).toBe(200);
    const refused = await sendMessage(url, { user_id: USER, text: 'second' });
    expect(refused.status).toBe(429);
    expect(refused.body.reply).toMatch(/sending messages a little too fast/);
    expect(fake.requests).toHaveLength(1);
  });

  it('a token budget is charged what the model reported; the estimate (prompt counted + output cap) is held meanwhile', async () => {
    const { url } = await start({ by_user: { rate: '100/m', tokens: '100000/h' } });
    fake.queue({ text: 'a slow answer, streamed slowly', pieces: 20, delayMs: 150, usage: { prompt_tokens: 1200, completion_tokens: 34, total_tokens: 1234 } });
    const pending = sendMessage(url, { user_id: USER, text: 'Tell me something.' });
    await fake.received(1);
    const held = await tokensUsed(url);
    // The system prompt, the message and the two tools' schemas are about a hundred tokens; the cap is reserved in full.
    expect(held.used).toBeGreaterThan(CAP + 60);
    expect(held.used).toBeLessThan(CAP + 250);
    expect((await pending).status).toBe(200);
    expect(await tokensUsed(url)).toEqual(expect.objectContaining({ used: 1234, remaining: 100000 - 1234 }));

    fake.queue({ text: 'another', usage: { prompt_tokens: 700, completion_tokens: 66, total_tokens: 766 } });
    const second = await sendMessage(url, { user_id: USER, text: 'And another.' });
    // The headers were made when the call was admitted: the first call's usage and this one's estimate.
    const remaining = Number(/"user-tokens";r=(\d+)/.exec(second.headers.get('ratelimit') ?? '')?.[1]);
    expect(remaining).toBeLessThan(100000 - 1234 - CAP - 60);
    expect(remaining).toBeGreaterThan(100000 - 1234 - CAP - 250);
    expect((await tokensUsed(url)).used).toBe(2000);
  });

  it('a client that hangs up aborts the upstream stream, and its reservation is given back', async () => {
    const { url } = await start({ by_user: { rate: '100/m', tokens: '100000/h', max_concurrent: 1 } });
    fake.queue({ text: 'a very long answer that nobody will read', pieces: 40, delayMs: 250 });
    const client = new AbortController();
    const abandoned = fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: USER, text: 'Write a long story.' }),
      signal: client.signal,
    }).catch(() => 'aborted');
    const upstream = await fake.received(1);
    expect((await tokensUsed(url)).used).toBeGreaterThan(CAP);
    client.abort();
    expect(await abandoned).toBe('aborted');
    await upstream.settled;
    expect(upstream.hungUp).toBe(true);
    await expect.poll(async () => (await tokensUsed(url)).used).toBe(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('floodgate_ratelimit_settlements_total{outcome="refunded"} 1');
    // Its concurrency slot was given back too.
    expect((await sendMessage(url, { user_id: USER, text: 'hi again' })).body).toMatchObject({ reply: 'You said: hi again' });
  });

  it('every provider failure gets a kind reply, costs no tokens when nothing was answered, and the gateway carries on', async () => {
    // One call at a time: every message after a failure shows that the failed call gave its slot back.
    const { url } = await start({ by_user: { rate: '100/m', tokens: '100000/h', max_concurrent: 1 } }, { timeout_ms: 1500 });
    const ask = () => sendMessage(url, { user_id: USER, text: 'hello' });

    fake.queue({ status: 429, retryAfter: '7' });
    const busy = await ask();
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('7');
    expect(busy.body).toEqual({ error: 'model_busy', reply: 'Sorry, the model is busy right now. Please try again in 7 seconds.', retry_after: 7 });

    fake.queue({ status: 500 });
    expect((await ask()).body).toEqual({ error: 'model_unavailable', reply: 'Sorry, the model could not answer just now. Please try again in a moment.' });
    // Neither call was answered by the provider: neither costs a token.
    expect((await tokensUsed(url)).used).toBe(0);

    fake.queue({ stall: true });
    const started = performance.now();
    const slow = await ask();
    expect(slow.status).toBe(504);
    expect(slow.body).toEqual({ error: 'model_timeout', reply: 'Sorry, the model took too long to answer. Please try again.' });
    expect(performance.now() - started).toBeLessThan(10_000);
    await fake.requests[2]!.settled;
    expect(fake.requests[2]!.hungUp).toBe(true);

    fake.queue({ cutAfter: 'Once upon a' }, { malformed: true });
    for (let i = 0; i < 2; i++) {
      const broken = await ask();
      expect(broken.status).toBe(502);
      expect(broken.body).toEqual({ error: 'model_error', reply: "Sorry, the model's answer broke off. Please try again." });
    }
    // One request per failure: nothing was retried behind the user's back.
    expect(fake.requests).toHaveLength(5);

    expect((await ask()).body).toMatchObject({ reply: 'You said: hello' });
    expect(gateway!.process.exitCode).toBeNull();
    const failures = gateway!.logs().filter((l) => l.msg === 'model call failed').map((l) => l.failure);
    expect(failures).toEqual(['busy', 'unavailable', 'timeout', 'cut', 'malformed']);
  });

  it('a model that loops on tool calls is stopped after max_tool_rounds with a kind answer', async () => {
    const { url } = await start(undefined, { max_tool_rounds: 2 });
    fake.queue(...Array.from({ length: 3 }, () => ({ toolCalls: [{ name: 'echo', arguments: { message: 'again' } }] })));
    const looped = await sendMessage(url, { user_id: USER, text: 'loop forever' });
    expect(looped.status).toBe(200);
    expect(looped.body.reply).toBe('Sorry, I could not finish that: it needed more tool calls than I may make for one message. Please ask for less at once.');
    // Two rounds of tools, then a last call that asked for text (tool_choice none), which the model ignored.
    expect(fake.requests).toHaveLength(3);
    expect(fake.requests.map((r) => r.body.tool_choice)).toEqual([undefined, undefined, 'none']);
    expect(toolMessages(fake).slice(0, 2)).toEqual(['Echo: again', 'Echo: again']);
  });
});

describe('the model agent: startup errors', () => {
  async function failedStart(agentConfig: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
    const config = { ...gatewayConfig([]), agent: agentConfig };
    const { stderr, exited } = spawnGateway(writeConfig(config), env);
    const code = await exited;
    return { code, stderr: stderr.join('\n') };
  }

  it('a missing API key variable stops the gateway, naming the field and the variable', async () => {
    const { code, stderr } = await failedStart({ kind: 'openai', model: 'm', api_key_env: 'FLOODGATE_TEST_UNSET_KEY' }, { FLOODGATE_TEST_UNSET_KEY: '' });
    expect(code).toBe(78);
    expect(stderr).toContain('agent.api_key_env: the environment variable FLOODGATE_TEST_UNSET_KEY is not set');
  });

  it('a key in the file is refused', async () => {
    const { code, stderr } = await failedStart({ kind: 'openai', model: 'm', api_key: KEY });
    expect(code).toBe(78);
    expect(stderr).toContain('agent.api_key: the API key is never read from the file');
    expect(stderr).not.toContain(KEY);
  });

  it('an MCP server that cannot start stops the gateway, naming it', async () => {
    const { code, stderr } = await failedStart({ kind: 'openai', model: 'm', mcp_servers: [{ name: 'ghost', command: '/nonexistent/mcp-server' }] });
    expect(code).toBe(78);
    expect(stderr).toContain('[FG_ERR_AGENT_START]');
    expect(stderr).toContain('agent.mcp_servers[0] (ghost): cannot start');
  });
});
