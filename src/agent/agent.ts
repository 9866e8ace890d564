import type { MessageBus } from '../bus/bus.ts';
import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { HookOutcome, HookRunner } from '../hooks/runner.ts';
import type { HookContext, HookPayload, PROMPT_OUTCOMES, Violation } from '../hooks/schemas.ts';
import type { Logger } from '../logger.ts';
import { countTokens, estimateTokens } from './tokens.ts';
import { TOOLS, TOOL_USAGE, parseCommand } from './tools.ts';

/** The one prompt the demo agent fetches. */
const PROMPT_ID = 'chat';

export interface AgentDeps {
  bus: MessageBus;
  runner: HookRunner;
  logger: Logger;
  clock: Clock;
}

/**
 * A deterministic orchestrator: for each inbound message it fetches the "chat" prompt and, when the
 * text is a tool command, invokes the tool, running the matching hook before each step.
 */
export class DemoAgent {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly onMessage = (message: InboundMessage): void => {
    const work = this.handle(message)
      .then((reply) => this.deps.bus.emit('message:out', reply))
      // A failing reply listener must not take the process down with an unhandled rejection.
      .then(
        () => undefined,
        (error: unknown) => this.deps.logger.error({ err_message: errorMessage(error) }, 'reply delivery failed'),
      );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  };

  constructor(private readonly deps: AgentDeps) {}

  start(): void {
    this.deps.bus.on('message:in', this.onMessage);
  }

  /** Stops taking messages and waits for those already being handled. */
  async stop(): Promise<void> {
    this.deps.bus.off('message:in', this.onMessage);
    await Promise.allSettled([...this.inFlight]);
  }

  async handle(message: InboundMessage): Promise<OutboundReply> {
    const context: HookContext = {
      message_id: message.id,
      channel: message.channel,
      user_id: message.userId,
      conversation_id: message.conversationId,
    };
    if (message.tenantId !== undefined) context.tenant_id = message.tenantId;
    // Aborts when the client goes away, and in any case when this message is done: whatever a hook
    // still holds for it (a concurrency slot, a reservation) is let go even if a step failed.
    const call = new AbortController();
    const abandon = (): void => call.abort();
    message.signal?.addEventListener('abort', abandon, { once: true });
    // Set once prePromptFetch admitted the call: postPromptFetch then says how it ended.
    let fetched: { outcome: PromptOutcome; actualTokens?: number } | undefined;
    try {
      const prompt = await this.deps.runner.run(
        'prePromptFetch',
        { prompt_id: PROMPT_ID, text: message.text, estimated_tokens: estimateTokens(message.text), context },
        call.signal,
      );
      if (prompt.stopped) return refusal(message, prompt.violation);
      fetched = { outcome: 'failed' };
      const reply = await this.respond(message, context, prompt.headers, call.signal);
      fetched = call.signal.aborted
        ? { outcome: 'cancelled' }
        : { outcome: 'completed', actualTokens: countTokens(message.text) + countTokens(reply.text) };
      return reply;
    } catch (error) {
      this.deps.logger.error({ channel: message.channel, err_message: errorMessage(error) }, 'message handling failed');
      return internalError(message);
    } finally {
      if (fetched) await this.finishPrompt(context, fetched.outcome, fetched.actualTokens);
      message.signal?.removeEventListener('abort', abandon);
      call.abort();
    }
  }

  /** The prompt's answer: an echo, or a tool's output when the text is a tool command. */
  private async respond(
    message: InboundMessage,
    context: HookContext,
    promptHeaders: Record<string, string> | undefined,
    signal: AbortSignal,
  ): Promise<OutboundReply> {
    let headers = promptHeaders;
    const command = parseCommand(message.text);
    if (command === null) {
      return answer(message, `You said: ${message.text}\nTry ${TOOL_USAGE}.`, headers);
    }
    if ('unknown' in command) {
      return answer(message, `I don't know the command /${command.unknown}. Try ${TOOL_USAGE}.`, headers);
    }
    const tool: HookOutcome = await this.deps.runner.run('preToolInvoke', { ...command, context }, signal);
    if (tool.stopped) return refusal(message, tool.violation);
    if (tool.headers) headers = { ...headers, ...tool.headers };
    const output = await TOOLS.get(command.tool)!.run(command.args, this.deps.clock, signal);
    return answer(message, output, headers);
  }

  /** Tells postPromptFetch hooks how the call ended; their failures never cost the user the answer. */
  private async finishPrompt(context: HookContext, outcome: PromptOutcome, actualTokens: number | undefined): Promise<void> {
    const payload: HookPayload<'postPromptFetch'> = { prompt_id: PROMPT_ID, outcome, context };
    if (actualTokens !== undefined) payload.actual_tokens = actualTokens;
    try {
      await this.deps.runner.run('postPromptFetch', payload);
    } catch (error) {
      this.deps.logger.error({ channel: context.channel, err_message: errorMessage(error) }, 'postPromptFetch failed');
    }
  }
}

type PromptOutcome = (typeof PROMPT_OUTCOMES)[number];

function internalError(message: InboundMessage): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'error',
    status: 500,
    code: 'internal_error',
    text: 'Sorry, something went wrong on our side. Please try again.',
    headers: {},
    quiet: false,
  };
}

function answer(message: InboundMessage, text: string, headers: Record<string, string> | undefined): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'answer',
    status: 200,
    text,
    headers: headers ?? {},
    quiet: false,
  };
}

function refusal(message: InboundMessage, violation: Violation): OutboundReply {
  const retryAfter = violation.details.retry_after;
  const reply: OutboundReply = {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'refused',
    status: violation.httpStatus,
    code: violation.code,
    text: violation.description,
    headers: violation.headers,
    quiet: violation.quiet === true,
  };
  if (typeof retryAfter === 'number') reply.retryAfter = retryAfter;
  return reply;
}
