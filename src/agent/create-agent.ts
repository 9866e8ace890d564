import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { AgentConfig } from '../config/agent-schema.ts';
import { DemoAgent } from './agent.ts';
import { OpenAiAgent, type ModelAgentDeps } from './openai-agent.ts';

/** What the gateway asks of an agent, whichever answers: the demo or a model. */
export interface Agent {
  /** The reply to `message`; never rejects. Its `signal` aborts when nobody waits any more. */
  handle(message: InboundMessage): Promise<OutboundReply>;
  /** Before the channels open: whatever the agent needs running (a model client, MCP servers). */
  start?(): Promise<void>;
  /** After the last message: whatever start() started is stopped. */
  close?(): Promise<void>;
}

/** The agent `config` chooses. Nothing heavy is loaded here: the model agent loads its parts in start(). */
export function createAgent(config: AgentConfig, deps: ModelAgentDeps): Agent {
  return config.kind === 'openai' ? new OpenAiAgent(config, deps) : new DemoAgent(deps);
}
