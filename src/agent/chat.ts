/**
 * The chat-completions shapes the model agent works with: the subset of OpenAI's request and answer
 * types it sends and reads, kept here so that only model-stream.ts depends on the client library.
 */

export interface ToolCallRequest {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCallRequest[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A tool as the model is offered it: a function with a JSON Schema for its arguments. */
export interface ToolSpec {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

/** What the provider says one call used (`stream_options.include_usage`). */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}
