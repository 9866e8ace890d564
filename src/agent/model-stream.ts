import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk, ChatCompletionCreateParamsStreaming } from 'openai/resources/chat/completions';
import type { ChatMessage, ToolCallRequest, ToolSpec, Usage } from './chat.ts';

export interface ModelSettings {
  baseUrl: string;
  /** Undefined: no key, and no Authorization header (a local server). */
  apiKey: string | undefined;
  model: string;
  maxOutputTokens: number;
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  temperature?: number;
  /** The whole call, from sending the request to the stream's last chunk. */
  timeoutMs: number;
}

export interface ModelRequest {
  messages: readonly ChatMessage[];
  tools: readonly ToolSpec[];
  /** `none` asks the model to answer in text (its last allowed call). */
  toolChoice?: 'none';
}

/**
 * How a call the provider did not finish went wrong: `busy` (its 429), `unavailable` (5xx, an error
 * it sent mid-stream, or unreachable), `rejected` (another 4xx: a bad key, a bad request),
 * `timeout`, `cut` (the stream stopped before the answer finished), `malformed` (a chunk that is not
 * a chat-completion chunk).
 */
export type ModelFailure = 'busy' | 'unavailable' | 'rejected' | 'timeout' | 'cut' | 'malformed';

/** What the model produced before a call ended early: billed tokens, as far as anyone can tell. */
export interface Progress {
  /** The provider answered (headers came back): it may bill the prompt. */
  reached: boolean;
  text: string;
  usage: Usage | undefined;
}

export type ModelResult =
  | { kind: 'answer'; text: string; toolCalls: ToolCallRequest[]; usage: Usage | undefined; finishReason: string }
  | { kind: 'cancelled'; partial: Progress }
  | {
      kind: 'failed';
      failure: ModelFailure;
      /** The provider's HTTP status, when it sent one. */
      status?: number;
      /** Whole seconds the provider asked to wait (its Retry-After). */
      retryAfter?: number;
      /** For the operator's log: what went wrong, with any secret taken out. */
      detail: string;
      partial: Progress;
    };

/** The longest wait passed on from a provider's Retry-After: beyond it, the number is not believed. */
const MAX_RETRY_AFTER_S = 86_400;

/** A chunk that parsed as JSON but is not a chat-completion chunk. */
class MalformedChunk extends Error {}

/**
 * One streamed chat completion against an OpenAI-compatible API, through the official client. Never
 * throws: every way a call can end is a ModelResult. The client makes no retries (a failure is
 * answered at once, kindly, saying when to come back) and logs
 * nothing (the caller logs what it decides to, throttled and without secrets).
 */
export class ModelStream {
  private readonly client: OpenAI;

  constructor(private readonly settings: ModelSettings) {
    this.client = new OpenAI({
      baseURL: settings.baseUrl,
      // The client needs a string; without a key, its Authorization header is unset below.
      apiKey: settings.apiKey ?? 'unused',
      // Nothing from the environment: only what the config says.
      organization: null,
      project: null,
      defaultHeaders: settings.apiKey === undefined ? { authorization: null } : undefined,
      maxRetries: 0,
      timeout: settings.timeoutMs,
      logLevel: 'off',
    });
  }

  /** Streams one answer; `signal` aborting (the user hung up) aborts the upstream request. */
  async complete(request: ModelRequest, signal: AbortSignal | undefined): Promise<ModelResult> {
    const partial: Progress = { reached: false, text: '', usage: undefined };
    if (signal?.aborted === true) return { kind: 'cancelled', partial };
    const controller = new AbortController();
    let stopped: 'cancelled' | 'timeout' | undefined;
    const onAbort = (): void => {
      stopped ??= 'cancelled';
      controller.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // The client's own timeout ends at the response's headers; this one covers the whole stream.
    const timer = setTimeout(() => {
      stopped ??= 'timeout';
      controller.abort();
    }, this.settings.timeoutMs);
    const answer = new AnswerBuilder(partial);
    try {
      const stream = await this.client.chat.completions.create(this.body(request), { signal: controller.signal });
      partial.reached = true;
      // An aborted stream ends the loop without an error: `stopped` says why.
      for await (const chunk of stream) answer.add(chunk);
      if (stopped !== undefined) return this.stoppedEarly(stopped, partial);
      const finishReason = answer.finishReason;
      if (finishReason === undefined) return failed('cut', 'the stream ended before the answer was finished', partial);
      return { kind: 'answer', text: partial.text, toolCalls: answer.toolCalls(), usage: partial.usage, finishReason };
    } catch (error) {
      if (stopped !== undefined) return this.stoppedEarly(stopped, partial);
      return this.classify(error, partial);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private body(request: ModelRequest): ChatCompletionCreateParamsStreaming {
    const { settings } = this;
    const body: Record<string, unknown> = {
      model: settings.model,
      messages: request.messages,
      stream: true,
      stream_options: { include_usage: true },
      [settings.maxTokensField]: settings.maxOutputTokens,
    };
    if (settings.temperature !== undefined) body.temperature = settings.temperature;
    if (request.tools.length > 0) {
      body.tools = request.tools;
      if (request.toolChoice !== undefined) body.tool_choice = request.toolChoice;
    }
    return body as unknown as ChatCompletionCreateParamsStreaming;
  }

  private stoppedEarly(why: 'cancelled' | 'timeout', partial: Progress): ModelResult {
    if (why === 'cancelled') return { kind: 'cancelled', partial };
    return failed('timeout', `no complete answer within ${this.settings.timeoutMs} ms`, partial);
  }

  private classify(error: unknown, partial: Progress): ModelResult {
    if (error instanceof APIConnectionTimeoutError) return failed('timeout', `no answer within ${this.settings.timeoutMs} ms`, partial);
    if (error instanceof APIUserAbortError) return { kind: 'cancelled', partial };
    if (error instanceof APIConnectionError) return failed('unavailable', `cannot reach the model server: ${this.redact(causeMessage(error))}`, partial);
    if (error instanceof APIError) {
      const status = error.status;
      const detail = this.redact(error.message);
      if (status === undefined) return failed('unavailable', `the model server reported an error mid-stream: ${detail}`, partial);
      const result = failed(status === 429 ? 'busy' : status === 408 ? 'timeout' : status >= 500 ? 'unavailable' : 'rejected', detail, partial);
      result.status = status;
      const retryAfter = retryAfterSeconds(error.headers);
      if (retryAfter !== undefined) result.retryAfter = retryAfter;
      return result;
    }
    if (error instanceof SyntaxError || error instanceof MalformedChunk) {
      return failed('malformed', `a stream chunk is not a chat-completion chunk: ${error.message}`, partial);
    }
    // After the headers, anything else is the body failing: the connection was cut.
    const message = this.redact(causeMessage(error));
    return partial.reached ? failed('cut', `the stream broke off: ${message}`, partial) : failed('unavailable', message, partial);
  }

  /** The text without the API key (a provider may quote part of a wrong key back). */
  private redact(text: string): string {
    const key = this.settings.apiKey;
    let out = key !== undefined && key.length >= 4 ? text.split(key).join('[redacted]') : text;
    out = out.replace(/\b(sk|key|token)-[A-Za-z0-9_*.-]{4,}/gi, '$1-[redacted]');
    return out.length > 300 ? `${out.slice(0, 300)}...` : out;
  }
}

function failed(failure: ModelFailure, detail: string, partial: Progress): Extract<ModelResult, { kind: 'failed' }> {
  return { kind: 'failed', failure, detail, partial };
}

function causeMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

/** Seconds from `retry-after-ms`, or `retry-after` (seconds or an HTTP date), rounded up. */
export function retryAfterSeconds(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (headers === undefined) return undefined;
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  let seconds: number | undefined;
  if (Number.isFinite(ms) && ms >= 0) seconds = ms / 1000;
  else {
    const value = headers.get('retry-after')?.trim();
    if (value === undefined || value === '') return undefined;
    if (/^\d+(\.\d+)?$/.test(value)) seconds = Number(value);
    else {
      const date = Date.parse(value);
      if (Number.isNaN(date)) return undefined;
      seconds = Math.max(0, (date - now) / 1000);
    }
  }
  return Math.min(MAX_RETRY_AFTER_S, Math.ceil(seconds));
}

interface PendingCall {
  id: string;
  name: string;
  arguments: string;
}

/** Puts an answer together from its chunks: text, tool calls (their pieces by index), usage, finish. */
class AnswerBuilder {
  finishReason: string | undefined;
  private readonly calls: PendingCall[] = [];

  constructor(private readonly partial: Progress) {}

  add(chunk: ChatCompletionChunk): void {
    if (typeof chunk !== 'object' || chunk === null) throw new MalformedChunk('not an object');
    const { choices, usage } = chunk as { choices?: unknown; usage?: unknown };
    if (usage !== undefined && usage !== null) this.partial.usage = readUsage(usage);
    if (choices === undefined) return;
    if (!Array.isArray(choices)) throw new MalformedChunk('"choices" is not a list');
    for (const choice of choices as unknown[]) this.addChoice(choice);
  }

  private addChoice(choice: unknown): void {
    if (typeof choice !== 'object' || choice === null) throw new MalformedChunk('a choice is not an object');
    const { delta, finish_reason, index } = choice as { delta?: unknown; finish_reason?: unknown; index?: unknown };
    // One answer is asked for; a server that sends others is not listened to for them.
    if (typeof index === 'number' && index !== 0) return;
    if (typeof finish_reason === 'string') this.finishReason = finish_reason;
    if (delta === undefined || delta === null) return;
    if (typeof delta !== 'object') throw new MalformedChunk('"delta" is not an object');
    const { content, tool_calls } = delta as { content?: unknown; tool_calls?: unknown };
    if (typeof content === 'string') this.partial.text += content;
    else if (content !== undefined && content !== null) throw new MalformedChunk('"content" is not a string');
    if (tool_calls === undefined || tool_calls === null) return;
    if (!Array.isArray(tool_calls)) throw new MalformedChunk('"tool_calls" is not a list');
    (tool_calls as unknown[]).forEach((piece, position) => this.addCallPiece(piece, position));
  }

  /** A piece of a tool call: the first carries its id and name, the rest more of its arguments. */
  private addCallPiece(piece: unknown, position: number): void {
    if (typeof piece !== 'object' || piece === null) throw new MalformedChunk('a tool call is not an object');
    const { index, id, function: fn } = piece as { index?: unknown; id?: unknown; function?: { name?: unknown; arguments?: unknown } };
    const at = typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < 128 ? index : position;
    const call = (this.calls[at] ??= { id: '', name: '', arguments: '' });
    if (typeof id === 'string' && id !== '') call.id = id;
    if (typeof fn?.name === 'string') call.name += fn.name;
    if (typeof fn?.arguments === 'string') call.arguments += fn.arguments;
    else if (typeof fn?.arguments === 'object' && fn.arguments !== null) call.arguments += JSON.stringify(fn.arguments);
  }

  toolCalls(): ToolCallRequest[] {
    return this.calls
      .filter((call) => call !== undefined && call.name !== '')
      .map((call, i) => ({ id: call.id || `call_${i}`, type: 'function', function: { name: call.name, arguments: call.arguments } }));
  }
}

function readUsage(value: unknown): Usage {
  const { prompt_tokens, completion_tokens, total_tokens } = value as Record<string, unknown>;
  const count = (n: unknown): number => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.round(n) : 0);
  const promptTokens = count(prompt_tokens);
  const completionTokens = count(completion_tokens);
  const total = count(total_tokens);
  return { promptTokens, completionTokens, totalTokens: total > 0 ? total : promptTokens + completionTokens };
}
