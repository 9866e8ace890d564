import type { MessageBus } from '../bus/bus.ts';
import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { HookOutcome, HookRunner } from '../hooks/runner.ts';
import type { HookContext, Violation } from '../hooks/schemas.ts';
import type { Logger } from '../logger.ts';
import { TOOLS, TOOL_USAGE, parseCommand } from './tools.ts';

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
    try {
      const prompt = await this.deps.runner.run('prePromptFetch', { prompt_id: 'chat', text: message.text, context });
      if (prompt.stopped) return refusal(message, prompt.violation);
      let headers = prompt.headers;

      const command = parseCommand(message.text);
      if (command === null) {
        return answer(message, `You said: ${message.text}\nTry ${TOOL_USAGE}.`, headers);
      }
      if ('unknown' in command) {
        return answer(message, `I don't know the command /${command.unknown}. Try ${TOOL_USAGE}.`, headers);
      }
      const tool: HookOutcome = await this.deps.runner.run('preToolInvoke', { ...command, context });
      if (tool.stopped) return refusal(message, tool.violation);
      if (tool.headers) headers = { ...headers, ...tool.headers };
      const output = TOOLS.get(command.tool)!.run(command.args, this.deps.clock);
      return answer(message, output, headers);
    } catch (error) {
      this.deps.logger.error({ channel: message.channel, err_message: errorMessage(error) }, 'message handling failed');
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
  }
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
