import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionCreateParamsStreaming } from 'openai/resources/chat/completions';
import { AnswerBuilder, MalformedChunk } from './answer-builder.ts';
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
