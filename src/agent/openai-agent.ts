import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { OpenAiAgentConfig } from '../config/agent-schema.ts';
import { errorMessage } from '../errors.ts';
import type { HookContext } from '../hooks/schemas.ts';
import { KeyedThrottle } from '../util/throttle.ts';
import { answer, internalError, refusal, type AgentDeps } from './agent.ts';
import type { ChatMessage, ToolSpec } from './chat.ts';
import { Conversations } from './conversations.ts';
import type { McpTools } from './mcp-tools.ts';
import { cancelledReply, EMPTY_ANSWER, modelFailureReply, tooManyRoundsReply } from './model-replies.ts';
import type { ModelResult, ModelStream } from './model-stream.ts';
import { fetchPrompt, type PromptFetchDeps } from './prompt-fetch.ts';
import type { PromptTokenizer } from './tokenizer.ts';
import { runToolRound } from './tool-round.ts';

export interface ModelAgentDeps extends AgentDeps {
  /** Relative paths of MCP servers are resolved against it: the config file's folder. */
  configDir: string;
  /** Where the API key and the MCP servers' secrets are read from. */
  env: NodeJS.ProcessEnv;
}

/** What start() loads: the client library, the tokenizer's tables and the MCP servers take a while. */
interface Running {
  model: Pick<ModelStream, 'complete'>;
  tokenizer: PromptTokenizer;
  tools: McpTools;
}

const FAILURE_LOG_INTERVAL_MS = 10_000;

/**
 * An agent backed by a model behind any OpenAI-compatible chat-completions API, with the tools of
 * the configured MCP servers. For each message: the conversation's recent exchanges and the message
 * go to the model (one prompt fetch per model call, through the hooks), the tools it asks for are
 * called (each through preToolInvoke), and so on until it answers, or until max_tool_rounds rounds
 * of tools. Never rejects: provider failures get a kind reply, a bug an internal error.
 */
export class OpenAiAgent {
  private running: Running | undefined;
  private readonly conversations: Conversations;
  private readonly failureLog = new KeyedThrottle(16);

  constructor(
    private readonly config: OpenAiAgentConfig,
    private readonly deps: ModelAgentDeps,
  ) {
    this.conversations = new Conversations(config.history, deps.clock);
  }

  /** Loads the client, the tokenizer and the MCP servers; throws (naming the server) when one cannot start. */
  async start(): Promise<void> {
    const { config, deps } = this;
    const [{ ModelStream }, { PromptTokenizer }, { McpTools }] = await Promise.all([
      import('./model-stream.ts'),
      import('./tokenizer.ts'),
      import('./mcp-tools.ts'),
    ]);
    const logger = deps.logger;
    const apiKey = config.api_key_env === undefined ? undefined : deps.env[config.api_key_env];
    const model = new ModelStream({
      baseUrl: config.base_url,
      apiKey,
      model: config.model,
      maxOutputTokens: config.max_output_tokens,
      maxTokensField: config.max_tokens_field,
      temperature: config.temperature,
      timeoutMs: config.timeout_ms,
    });
    const tokenizer = await PromptTokenizer.load(config.tokenizer);
    const tools =
      config.mcp_servers.length === 0
        ? McpTools.none(logger)
        : await McpTools.start(config.mcp_servers, { logger, configDir: deps.configDir, env: deps.env, clientInfo: { name: 'floodgate', version: '0.1.0' } });
    this.running = { model, tokenizer, tools };
    // The base URL says which provider (without any credentials in it); the key is never logged, only whether there is one.
    const { origin, pathname } = new URL(config.base_url);
    logger.info({ base_url: origin + pathname, model: config.model, api_key: apiKey === undefined ? 'none' : 'set', tools: tools.specs.length }, 'model agent ready');
  }

  async close(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    await running?.tools.close();
  }

  async handle(message: InboundMessage): Promise<OutboundReply> {
    const running = this.running;
    if (running === undefined) return internalError(message);
    try {
      return await this.converse(message, running);
    } catch (error) {
      this.deps.logger.error({ channel: message.channel, err_message: errorMessage(error) }, 'message handling failed');
      return internalError(message);
    }
  }

  private async converse(message: InboundMessage, running: Running): Promise<OutboundReply> {
    const { config } = this;
    const context: HookContext = {
      message_id: message.id,
      channel: message.channel,
      user_id: message.userId,
      conversation_id: message.conversationId,
    };
    if (message.tenantId !== undefined) context.tenant_id = message.tenantId;
    const messages: ChatMessage[] = [];
    if (config.system_prompt !== undefined) messages.push({ role: 'system', content: config.system_prompt });
    messages.push(...this.conversations.history(message), { role: 'user', content: message.text });
    const tools: ToolSpec[] = config.max_tool_rounds > 0 ? running.tools.specs : [];
    const { runner, logger } = this.deps;
    const fetchDeps: PromptFetchDeps = { runner, logger, model: running.model, tokenizer: running.tokenizer, maxOutputTokens: config.max_output_tokens };
    let headers: Record<string, string> | undefined;
    for (let round = 0; ; round++) {
      // The last allowed call asks for text: a model that would go on calling tools sums up instead.
      const last = round === config.max_tool_rounds;
      const request = { messages, tools, ...(last && tools.length > 0 ? { toolChoice: 'none' as const } : {}) };
      const fetched = await fetchPrompt(fetchDeps, message, context, round === 0 ? 'chat' : `chat-${round + 1}`, request);
      if (fetched.kind === 'refused') return refusal(message, fetched.violation);
      if (fetched.kind === 'cancelled') return cancelledReply(message);
      if (fetched.kind === 'failed') return this.failed(message, fetched, headers);
      if (fetched.headers !== undefined) headers = { ...headers, ...fetched.headers };
      if (fetched.toolCalls.length === 0) {
        const text = fetched.text.trim() === '' ? EMPTY_ANSWER : fetched.text;
        this.conversations.remember(message, text);
        return answer(message, text, headers);
      }
      if (last) return tooManyRoundsReply(message, headers);
      messages.push({ role: 'assistant', content: fetched.text === '' ? null : fetched.text, tool_calls: fetched.toolCalls });
      const done = await runToolRound({ runner, tools: running.tools }, message, context, fetched.toolCalls);
      messages.push(...done.messages);
      if (done.headers !== undefined) headers = { ...headers, ...done.headers };
      if (message.signal?.aborted === true) return cancelledReply(message);
    }
  }

  /** A kind reply; the operator's log says what happened, once per kind of failure every 10 s. */
  private failed(message: InboundMessage, result: Extract<ModelResult, { kind: 'failed' }>, headers: Record<string, string> | undefined): OutboundReply {
    if (this.failureLog.pass(result.failure, this.deps.clock.now(), FAILURE_LOG_INTERVAL_MS)) {
      const fields = { channel: message.channel, failure: result.failure, status: result.status, retry_after: result.retryAfter, detail: result.detail };
      if (result.failure === 'rejected') this.deps.logger.error(fields, 'model call refused by the provider; check the agent config');
      else this.deps.logger.warn(fields, 'model call failed');
    }
    return modelFailureReply(message, result.failure, result.retryAfter, headers);
  }
}
