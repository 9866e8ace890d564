import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { ToolCallRequest, Usage } from './chat.ts';

/** What has come of an answer so far: the builder adds text and usage to it as chunks arrive. */
export interface AnswerSoFar {
  text: string;
  usage: Usage | undefined;
}

/**
 * The most an answer may hold (text and tool-call arguments, in characters): far beyond any output cap,
 * so only a server that streams without end reaches it, and is stopped before it fills the memory.
 */
const MAX_ANSWER_CHARS = 4_000_000;

/** A chunk that parsed as JSON but is not a chat-completion chunk. */
export class MalformedChunk extends Error {}

interface PendingCall {
  id: string;
  name: string;
  arguments: string;
}

/** Puts an answer together from its chunks: text, tool calls (their pieces by index), usage, finish. */
export class AnswerBuilder {
  finishReason: string | undefined;
  private readonly calls: PendingCall[] = [];
  /** Characters taken into the answer so far. */
  private size = 0;

  constructor(private readonly partial: AnswerSoFar) {}

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
    if (typeof content === 'string') this.partial.text += this.taken(content);
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
    if (typeof fn?.name === 'string') call.name += this.taken(fn.name);
    if (typeof fn?.arguments === 'string') call.arguments += this.taken(fn.arguments);
    else if (typeof fn?.arguments === 'object' && fn.arguments !== null) call.arguments += this.taken(JSON.stringify(fn.arguments));
  }

  /** `text`, counted against MAX_ANSWER_CHARS. */
  private taken(text: string): string {
    this.size += text.length;
    if (this.size > MAX_ANSWER_CHARS) throw new MalformedChunk(`the answer is longer than ${MAX_ANSWER_CHARS} characters`);
    return text;
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
