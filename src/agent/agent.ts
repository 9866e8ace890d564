import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { HookOutcome, HookRunner } from '../hooks/runner.ts';
import type { HookContext, HookPayload, PROMPT_OUTCOMES, Violation } from '../hooks/schemas.ts';
import type { Logger } from '../logger.ts';
import { StepCall } from '../util/step-call.ts';
import { countTokens, estimateTokens } from './tokens.ts';
import { TOOLS, TOOL_USAGE, parseCommand, type ToolCall } from './tools.ts';

/** The one prompt the demo agent fetches. */
const PROMPT_ID = 'chat';

export interface AgentDeps {
  runner: HookRunner;
  logger: Logger;
  clock: Clock;
}

/**
 * A deterministic orchestrator: for each inbound message it fetches the "chat" prompt and, when the
 * text is a tool command, invokes the tool, running the matching hook before each step. Channels call
 * it through the gateway (Gateway.answer) and await the reply.
 */
export class DemoAgent {
  constructor(private readonly deps: AgentDeps) {}

  /**
   * The reply to `message`; never rejects (a failure is answered as an internal error). Its `signal`,
   * when it has one, aborts when nobody waits for the answer any more: the hooks' signal aborts with it.
   */
  async handle(message: InboundMessage): Promise<OutboundReply> {
    const context: HookContext = {
      message_id: message.id,
      channel: message.channel,
      user_id: message.userId,
      conversation_id: message.conversationId,
    };
    if (message.tenantId !== undefined) context.tenant_id = message.tenantId;
    // Each step's hooks get a call of their own, which aborts when nobody waits for the answer any more
    // (the client went away, the channel's reply timeout gave up), when the hook runner gives up on a
    // handler of that step (a hook timeout), and in any case when this message is done: whatever a
    // hook still holds for it (a concurrency slot, a reservation) is let go even if a step failed.
    const prompt = new StepCall(message.signal);
    // Set once prePromptFetch admitted the call: postPromptFetch then says how it ended.
    let fetched: { outcome: PromptOutcome; actualTokens?: number } | undefined;
    try {
      const admitted = await this.deps.runner.run(
        'prePromptFetch',
        { prompt_id: PROMPT_ID, text: message.text, estimated_tokens: estimateTokens(message.text), context },
        prompt,
      );
      if (admitted.stopped) return refusal(message, admitted.violation);
      fetched = { outcome: 'failed' };
      const reply = await this.respond(message, context, admitted.headers);
      fetched = prompt.aborted
        ? { outcome: 'cancelled' }
        : { outcome: 'completed', actualTokens: countTokens(message.text) + countTokens(reply.text) };
      return reply;
    } catch (error) {
      this.deps.logger.error({ channel: message.channel, err_message: errorMessage(error) }, 'message handling failed');
      return internalError(message);
    } finally {
      // Tells postPromptFetch hooks how the call ended; their failures never cost the user the answer.
      // Without a handler there is nobody to tell (and no await to pay for on every message).
      if (fetched && this.deps.runner.has('postPromptFetch')) {
        try {
          await this.deps.runner.run('postPromptFetch', promptEnd(context, fetched.outcome, fetched.actualTokens));
        } catch (error) {
          this.deps.logger.error({ channel: context.channel, err_message: errorMessage(error) }, 'postPromptFetch failed');
        }
      }
      prompt.finish();
    }
  }

  /** The prompt's answer: an echo, or a tool's output when the text is a tool command. */
  private async respond(message: InboundMessage, context: HookContext, promptHeaders: Record<string, string> | undefined): Promise<OutboundReply> {
    const command = parseCommand(message.text);
    if (command === null) {
      return answer(message, `You said: ${message.text}\nTry ${TOOL_USAGE}.`, promptHeaders);
    }
    if ('unknown' in command) {
      return answer(message, `I don't know the command /${command.unknown}. Try ${TOOL_USAGE}.`, promptHeaders);
    }
    return this.invoke(message, context, promptHeaders, command);
  }

  private async invoke(
    message: InboundMessage,
    context: HookContext,
    promptHeaders: Record<string, string> | undefined,
    command: ToolCall,
  ): Promise<OutboundReply> {
    const call = new StepCall(message.signal);
    try {
      const tool: HookOutcome = await this.deps.runner.run('preToolInvoke', { ...command, context }, call);
      if (tool.stopped) return refusal(message, tool.violation);
      const headers = tool.headers ? { ...promptHeaders, ...tool.headers } : promptHeaders;
      const output = await TOOLS.get(command.tool)!.run(command.args, this.deps.clock, call.signal);
      return answer(message, output, headers);
    } finally {
      call.finish();
    }
  }
}

export type PromptOutcome = (typeof PROMPT_OUTCOMES)[number];

function promptEnd(context: HookContext, outcome: PromptOutcome, actualTokens: number | undefined): HookPayload<'postPromptFetch'> {
  const payload: HookPayload<'postPromptFetch'> = { prompt_id: PROMPT_ID, outcome, context };
  if (actualTokens !== undefined) payload.actual_tokens = actualTokens;
  return payload;
}

export function internalError(message: InboundMessage): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'error',
    status: 500,
    code: 'internal_error',
    text: 'Sorry, something went wrong on our side. Please try again.',
    headers: {},
    silent: false,
  };
}

export function answer(message: InboundMessage, text: string, headers: Record<string, string> | undefined): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'answer',
    status: 200,
    text,
    headers: headers ?? {},
    silent: false,
  };
}

export function refusal(message: InboundMessage, violation: Violation): OutboundReply {
  const reply: OutboundReply = {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'refused',
    status: violation.httpStatus,
    code: violation.code,
    text: violation.description,
    headers: violation.headers,
    silent: violation.silent === true,
  };
  if (violation.retryAfter !== undefined) reply.retryAfter = violation.retryAfter;
  return reply;
}
