import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';

/**
 * A local OpenAI-compatible chat-completions server for the model agent's tests: the one stand-in,
 * for a provider that cannot run here. It speaks the wire format (streamed SSE chunks, a usage chunk,
 * tool calls, error statuses with Retry-After), can misbehave on purpose (slow, stalled, cut and
 * malformed streams), and records every request it got and whether its client hung up before the
 * answer was complete.
 */

export interface ChatBody {
  model: string;
  messages: { role: string; content: string | null; tool_calls?: { id: string; function: { name: string; arguments: string } }[]; tool_call_id?: string }[];
  tools?: { type: string; function: { name: string; description?: string; parameters: Record<string, unknown> } }[];
  tool_choice?: unknown;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
}

export interface UsageSpec {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** How to answer one request. */
export type Script =
  /** Streamed text in `pieces` chunks, `delayMs` apart, then the usage chunk (none with `usage: null`). */
  | { text: string; pieces?: number; delayMs?: number; usage?: UsageSpec | null }
  /** Streamed tool calls (arguments as given, or JSON of them), then the usage chunk. */
  | { toolCalls: { name: string; arguments: unknown }[]; usage?: UsageSpec | null }
  /** An error status with a JSON error body (its message as given), and Retry-After when given. */
  | { status: number; retryAfter?: string; message?: string }
  /** Streams `before` as text, then destroys the connection mid-answer. */
  | { cutAfter: string }
  /** One good chunk, then one that is not JSON. */
  | { malformed: true }
  /** Headers and a first chunk, then nothing, until the client goes away. */
  | { stall: true };

export interface RecordedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: ChatBody;
  /** The client closed the connection before the answer was complete. */
  hungUp: boolean;
  /** Resolves when the answer is complete or the connection closed, whichever first. */
  settled: Promise<void>;
}

export interface FakeOpenAi {
  /** The API's base URL, ending in /v1. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Scripts for the next requests, in order; after them, `respond` answers. */
  queue(...scripts: Script[]): void;
  /** Resolves once `count` requests have arrived. */
  received(count: number, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export const DEFAULT_USAGE: UsageSpec = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOpenAi(respond: (body: ChatBody, index: number) => Script = () => ({ text: 'ok' })): Promise<FakeOpenAi> {
  const requests: RecordedRequest[] = [];
  const scripts: Script[] = [];
  let calls = 0;
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== 'POST' || !(req.url ?? '').endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ChatBody;
    const index = calls++;
    let settle!: () => void;
    const record: RecordedRequest = { path: req.url ?? '', headers: req.headers, body, hungUp: false, settled: new Promise((r) => (settle = r)) };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.hungUp = true;
      settle();
    });
    const script = scripts.shift() ?? respond(body, index);
    await play(script, res, `chatcmpl-${index + 1}`, body.model);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    queue: (...more) => void scripts.push(...more),
    async received(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        if (Date.now() > deadline) throw new Error(`the fake model got ${requests.length} requests, not ${count}, within ${timeoutMs} ms`);
        await pause(10);
      }
      return requests[count - 1]!;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function play(script: Script, res: ServerResponse, id: string, model: string): Promise<void> {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const usageChunk = (usage: UsageSpec) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`;
  const write = (text: string) => {
    if (!res.destroyed) res.write(text);
  };

  if ('status' in script) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (script.retryAfter !== undefined) headers['retry-after'] = script.retryAfter;
    res.writeHead(script.status, headers);
    res.end(JSON.stringify({ error: { message: script.message ?? `fake error ${script.status}`, type: script.status === 429 ? 'rate_limit_exceeded' : 'server_error' } }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  write(chunk({ role: 'assistant', content: '' }, null));
  if ('stall' in script) return; // The client's timeout or hang-up ends it.
  if ('malformed' in script) {
    write(chunk({ content: 'Hel' }, null));
    write('data: {"id": "broken", "choices": [ {"delta": \n\n');
    write(chunk({ content: 'lo' }, null));
    res.end(`${chunk({}, 'stop')}data: [DONE]\n\n`);
    return;
  }
  if ('cutAfter' in script) {
    write(chunk({ content: script.cutAfter }, null));
    await pause(50);
    res.destroy();
    return;
  }
  if ('toolCalls' in script) {
    script.toolCalls.forEach((call, i) => {
      const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
      // The id and name first, the arguments in two pieces, as providers stream them.
      write(chunk({ tool_calls: [{ index: i, id: `call_${id}_${i}`, type: 'function', function: { name: call.name, arguments: '' } }] }, null));
      const half = Math.floor(args.length / 2);
      write(chunk({ tool_calls: [{ index: i, function: { arguments: args.slice(0, half) } }] }, null));
      write(chunk({ tool_calls: [{ index: i, function: { arguments: args.slice(half) } }] }, null));
    });
    write(chunk({}, 'tool_calls'));
    if (script.usage !== null) write(usageChunk(script.usage ?? DEFAULT_USAGE));
    res.end('data: [DONE]\n\n');
    return;
  }
  const pieces = Math.max(1, script.pieces ?? 2);
  const size = Math.ceil(script.text.length / pieces);
  for (let i = 0; i < pieces; i++) {
    if (res.destroyed) return;
    write(chunk({ content: script.text.slice(i * size, (i + 1) * size) }, null));
    if (script.delayMs !== undefined) await pause(script.delayMs);
  }
  if (res.destroyed) return;
  write(chunk({}, 'stop'));
  if (script.usage !== null) write(usageChunk(script.usage ?? DEFAULT_USAGE));
  res.end('data: [DONE]\n\n');
}
