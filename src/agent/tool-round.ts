import type { InboundMessage } from '../bus/messages.ts';
import type { HookRunner } from '../hooks/runner.ts';
import type { HookContext } from '../hooks/schemas.ts';
import { StepCall } from '../util/step-call.ts';
import type { ChatMessage, ToolCallRequest } from './chat.ts';
import type { McpTools } from './mcp-tools.ts';
import { refusedToolText } from './model-replies.ts';

/** Tool calls run per round at most; a model asking for more in one go is told the rest were not run. */
export const MAX_CALLS_PER_ROUND = 16;

export interface ToolRoundDeps {
  runner: HookRunner;
  tools: Pick<McpTools, 'has' | 'call'>;
}

export interface ToolRound {
  /** One `tool` message per call, in the order the model asked for them. */
  messages: ChatMessage[];
  /** The admitting hooks' headers, later calls' over earlier ones'. */
  headers: Record<string, string> | undefined;
}

/**
 * Runs the tool calls the model asked for, one after another. Each goes through preToolInvoke by its
 * MCP tool name first; a refused call is not run, and the model reads why instead (which limit, when
 * to try again). Arguments that are not a JSON object, and tools that do not exist, are told to the
 * model too; nothing here throws at it.
 */
export async function runToolRound(deps: ToolRoundDeps, message: InboundMessage, context: HookContext, calls: readonly ToolCallRequest[]): Promise<ToolRound> {
  const messages: ChatMessage[] = [];
  let headers: Record<string, string> | undefined;
  for (const [index, call] of calls.entries()) {
    const name = call.function.name;
    let content: string;
    const args = parseArguments(call.function.arguments);
    if (index >= MAX_CALLS_PER_ROUND) content = `Not run: at most ${MAX_CALLS_PER_ROUND} tool calls are run at once; ask again for the rest.`;
    else if (!deps.tools.has(name)) content = `There is no tool named "${name}".`;
    else if (typeof args === 'string') content = `The ${name} tool call was not run: ${args}.`;
    else if (message.signal?.aborted === true) content = 'Not run: the answer is no longer awaited.';
    else {
      const step = new StepCall(message.signal);
      try {
        const admitted = await deps.runner.run('preToolInvoke', { tool: name, args, context }, step);
        if (admitted.stopped) content = refusedToolText(name, admitted.violation);
        else {
          if (admitted.headers !== undefined) headers = { ...headers, ...admitted.headers };
          // The user's signal, not the step's: a hook that timed out and was let through must not stop the tool.
          content = (await deps.tools.call(name, args, message.signal)).text;
        }
      } finally {
        step.finish();
      }
    }
    messages.push({ role: 'tool', tool_call_id: call.id, content });
  }
  return { messages, headers };
}

/** The arguments as an object, or why they are not one. Empty arguments are no arguments. */
function parseArguments(text: string): Record<string, unknown> | string {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'its arguments are not valid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'its arguments must be a JSON object';
  return value as Record<string, unknown>;
}
