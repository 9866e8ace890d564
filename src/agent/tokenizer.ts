import type { ChatMessage, ToolSpec } from './chat.ts';

/** The encodings the estimate can count in; each is a module of gpt-tokenizer, loaded on first use. */
export type Encoding = 'o200k_base' | 'cl100k_base';

/**
 * Per message, the chat format adds about this many tokens around role and content, and the reply is
 * primed with about as many (OpenAI's published way of counting chat prompts).
 */
const TOKENS_PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/**
 * Counts a prompt's tokens the way the provider will bill them, closely enough to reserve a budget
 * before the call (the provider's reported usage replaces the estimate afterwards). Pure JavaScript
 * BPE (gpt-tokenizer): no network, no native code.
 */
export class PromptTokenizer {
  private constructor(private readonly countText: (text: string) => number) {}

  /** Loads `encoding`'s tables (a few hundred milliseconds, once: at the agent's start). */
  static async load(encoding: Encoding): Promise<PromptTokenizer> {
    const module = encoding === 'cl100k_base' ? await import('gpt-tokenizer/encoding/cl100k_base') : await import('gpt-tokenizer/encoding/o200k_base');
    // Special-token text in a message ("<|endoftext|>") is counted as text, never refused.
    return new PromptTokenizer((text) => module.countTokens(text, { disallowedSpecial: new Set() }));
  }

  /** Tokens of a plain text. */
  text(text: string): number {
    return text === '' ? 0 : this.countText(text);
  }

  /** Tokens of a whole prompt: every message, and the tools offered (as their JSON). */
  prompt(messages: readonly ChatMessage[], tools: readonly ToolSpec[]): number {
    let total = REPLY_PRIMING;
    for (const message of messages) {
      total += TOKENS_PER_MESSAGE + this.text(message.role);
      if (message.content !== null) total += this.text(message.content);
      if (message.role === 'assistant' && message.tool_calls !== undefined) {
        for (const call of message.tool_calls) total += this.text(call.function.name) + this.text(call.function.arguments);
      }
    }
    if (tools.length > 0) total += this.text(JSON.stringify(tools));
    return total;
  }
}
