import type { InboundMessage } from '../bus/messages.ts';
import { errorMessage } from '../errors.ts';
import type { HookRunner } from '../hooks/runner.ts';
import type { HookContext, HookPayload, Violation } from '../hooks/schemas.ts';
import type { Logger } from '../logger.ts';
import { StepCall } from '../util/step-call.ts';
import type { PromptOutcome } from './agent.ts';
import type { ToolCallRequest } from './chat.ts';
import type { ModelRequest, ModelResult, ModelStream, Progress } from './model-stream.ts';
import type { PromptTokenizer } from './tokenizer.ts';

export interface PromptFetchDeps {
  runner: HookRunner;
  logger: Logger;
  model: Pick<ModelStream, 'complete'>;
  tokenizer: PromptTokenizer;
  /** The output cap sent with every call: the estimate reserves it in full. */
  maxOutputTokens: number;
}

export type FetchResult =
  | { kind: 'refused'; violation: Violation }
  | { kind: 'answer'; text: string; toolCalls: ToolCallRequest[]; headers: Record<string, string> | undefined }
  | Extract<ModelResult, { kind: 'failed' }>
  | { kind: 'cancelled' };

/** How a call ended, for postPromptFetch; `actualTokens` undefined on a cancelled call gives it all back. */
interface Settled {
  outcome: PromptOutcome;
  actualTokens?: number;
}

/**
 * One model call as one prompt fetch: prePromptFetch with the estimate (the prompt's tokens, counted
 * with the tokenizer, plus the output cap), the streamed call if admitted, and postPromptFetch with
 * what it cost: the usage the provider reported, or, when it reported none, the prompt and the
 * output counted here. A call the provider never answered (its 429, a 5xx, unreachable) costs no
 * tokens; a call the user hung up on is reported `cancelled` without tokens, so its reservation is
 * given back. The model call is aborted by the user's signal only (not by a hook that timed out and
 * was let through by its on_error).
 */
export async function fetchPrompt(
  deps: PromptFetchDeps,
  message: InboundMessage,
  context: HookContext,
  promptId: string,
  request: ModelRequest,
): Promise<FetchResult> {
  const step = new StepCall(message.signal);
  let settled: Settled | undefined;
  try {
    const promptTokens = deps.tokenizer.prompt(request.messages, request.tools);
    const admitted = await deps.runner.run(
      'prePromptFetch',
      { prompt_id: promptId, text: message.text, estimated_tokens: promptTokens + deps.maxOutputTokens, context },
      step,
    );
    if (admitted.stopped) return { kind: 'refused', violation: admitted.violation };
    settled = { outcome: 'failed' };
    const result = await deps.model.complete(request, message.signal);
    if (result.kind === 'answer') {
      const output = result.text + result.toolCalls.map((c) => c.function.name + c.function.arguments).join('');
      settled = { outcome: 'completed', actualTokens: result.usage?.totalTokens ?? promptTokens + deps.tokenizer.text(output) };
      return { kind: 'answer', text: result.text, toolCalls: result.toolCalls, headers: admitted.headers };
    }
    if (result.kind === 'cancelled') {
      settled = { outcome: 'cancelled' };
      return { kind: 'cancelled' };
    }
    settled = { outcome: 'failed', actualTokens: spent(result.partial, promptTokens, deps.tokenizer) };
    return result;
  } finally {
    if (settled !== undefined && deps.runner.has('postPromptFetch')) await tellEnd(deps, context, promptId, settled);
    step.finish();
  }
}

/** Tokens a failed call cost: none if the provider never answered, else its usage or the count so far. */
function spent(progress: Progress, promptTokens: number, tokenizer: PromptTokenizer): number {
  if (!progress.reached) return 0;
  return progress.usage?.totalTokens ?? promptTokens + tokenizer.text(progress.text);
}

async function tellEnd(deps: PromptFetchDeps, context: HookContext, promptId: string, settled: Settled): Promise<void> {
  const payload: HookPayload<'postPromptFetch'> = { prompt_id: promptId, outcome: settled.outcome, context };
  if (settled.actualTokens !== undefined) payload.actual_tokens = settled.actualTokens;
  try {
    await deps.runner.run('postPromptFetch', payload);
  } catch (error) {
    // Its failures never cost the user the answer.
    deps.logger.error({ channel: context.channel, err_message: errorMessage(error) }, 'postPromptFetch failed');
  }
}
