import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { McpServerConfig } from '../config/agent-schema.ts';
import { ErrorCode, errorMessage, problemsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { KeyedThrottle } from '../util/throttle.ts';
import type { ToolSpec } from './chat.ts';
import { connectServer, type ConnectDeps, type ConnectedServer } from './mcp-connect.ts';

/** The most of a tool's output the model is shown; the rest is cut (it costs tokens and memory). */
export const MAX_TOOL_OUTPUT_CHARS = 16_000;
const FAILURE_LOG_INTERVAL_MS = 10_000;

interface ToolEntry {
  server: ConnectedServer;
  spec: ToolSpec;
}

/** What a tool call gave the model to read, and whether the tool itself failed. */
export interface ToolOutput {
  text: string;
  failed: boolean;
}

/**
 * The tools of the configured MCP servers, offered to the model by their MCP names. Servers start
 * with the agent and close with it; one that cannot start (or lists a tool twice over, or lacks a
 * tool the config names) stops the gateway's start with every such problem named.
 */
export class McpTools {
  private readonly failures = new KeyedThrottle(256);

  private constructor(
    private readonly servers: ConnectedServer[],
    private readonly tools: ReadonlyMap<string, ToolEntry>,
    private readonly logger: Logger,
  ) {}

  static async start(configs: readonly McpServerConfig[], deps: ConnectDeps): Promise<McpTools> {
    const settled = await Promise.allSettled(configs.map((config) => connectServer(config, deps)));
    const servers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const problems: string[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'rejected') problems.push(`agent.mcp_servers[${i}] (${configs[i]!.name}): cannot start: ${errorMessage(s.reason)}`);
    });
    const tools = new Map<string, ToolEntry>();
    for (const server of servers) {
      const index = configs.indexOf(server.config);
      const offered = pickTools(server, index, problems);
      for (const tool of offered) {
        const other = tools.get(tool.name);
        if (other !== undefined) {
          problems.push(`agent.mcp_servers[${index}] (${server.config.name}): tool "${tool.name}" is also offered by "${other.server.config.name}"; list one of them in its "tools"`);
          continue;
        }
        tools.set(tool.name, { server, spec: toolSpec(tool) });
      }
    }
    if (problems.length > 0) {
      await Promise.allSettled(servers.map((s) => s.client.close()));
      throw problemsError(ErrorCode.AgentStart, 'the agent\'s MCP servers could not start', problems);
    }
    for (const server of servers) {
      server.client.onclose = () => deps.logger.warn({ mcp_server: server.config.name }, 'mcp server connection closed; its tools fail until a restart');
    }
    deps.logger.info({ mcp_servers: servers.map((s) => s.config.name), tools: [...tools.keys()] }, 'mcp tools ready');
    return new McpTools(servers, tools, deps.logger);
  }

  /** No servers: no tools. */
  static none(logger: Logger): McpTools {
    return new McpTools([], new Map(), logger);
  }

  /** The tools as the model is offered them. */
  get specs(): ToolSpec[] {
    return [...this.tools.values()].map((entry) => entry.spec);
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  /** Calls `name`; never throws: a failure is told to the model as the tool's result. */
  async call(name: string, args: Record<string, unknown>, signal: AbortSignal | undefined): Promise<ToolOutput> {
    const entry = this.tools.get(name);
    if (entry === undefined) return { text: `There is no tool named "${name}".`, failed: true };
    const { client, config } = entry.server;
    try {
      const result = await client.callTool({ name, arguments: args }, undefined, {
        signal,
        timeout: config.call_timeout_ms,
        maxTotalTimeout: config.call_timeout_ms,
      });
      const text = resultText(result as CallResult);
      return result.isError === true ? { text: `The tool reported an error: ${text}`, failed: true } : { text, failed: false };
    } catch (error) {
      if (this.failures.pass(config.name, Date.now(), FAILURE_LOG_INTERVAL_MS)) {
        this.logger.warn({ mcp_server: config.name, tool: name, err_message: errorMessage(error) }, 'mcp tool call failed');
      }
      return { text: `The tool could not be run: ${errorMessage(error)}`, failed: true };
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.servers.map((server) => closeClient(server.client)));
  }
}

async function closeClient(client: Client): Promise<void> {
  client.onclose = undefined;
  await client.close();
}

/** The server's tools that the config lets the model see; a name it lists that the server lacks is a problem. */
function pickTools(server: ConnectedServer, index: number, problems: string[]): Tool[] {
  const wanted = server.config.tools;
  if (wanted === undefined) return server.tools;
  const names = new Set(server.tools.map((t) => t.name));
  for (const name of wanted) {
    if (!names.has(name)) {
      problems.push(`agent.mcp_servers[${index}].tools: the server has no tool "${name}" (it has: ${[...names].join(', ') || 'none'})`);
    }
  }
  return server.tools.filter((t) => wanted.includes(t.name));
}

/** An MCP tool as an OpenAI function: its input schema is the function's parameters. */
function toolSpec(tool: Tool): ToolSpec {
  const { $schema: _dialect, ...parameters } = tool.inputSchema as Record<string, unknown>;
  const spec: ToolSpec = { type: 'function', function: { name: tool.name, parameters } };
  const description = tool.description ?? tool.title;
  if (description !== undefined) spec.function.description = description;
  return spec;
}

interface CallResult {
  content?: { type: string; text?: string; mimeType?: string; resource?: { uri?: string; text?: string }; uri?: string }[];
  structuredContent?: unknown;
  toolResult?: unknown;
}

/** The result's text for the model: text parts as they are, other parts named, cut at MAX_TOOL_OUTPUT_CHARS. */
function resultText(result: CallResult): string {
  const parts: string[] = [];
  for (const item of result.content ?? []) {
    if (item.type === 'text' && typeof item.text === 'string') parts.push(item.text);
    else if (item.type === 'resource' && typeof item.resource?.text === 'string') parts.push(item.resource.text);
    else if (item.type === 'resource_link' || item.type === 'resource') parts.push(`[resource ${item.uri ?? item.resource?.uri ?? ''}]`);
    else parts.push(`[${item.type}${item.mimeType ? ` ${item.mimeType}` : ''} not shown]`);
  }
  if (parts.length === 0 && result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  if (parts.length === 0 && result.toolResult !== undefined) parts.push(JSON.stringify(result.toolResult));
  const text = parts.join('\n');
  return text.length > MAX_TOOL_OUTPUT_CHARS ? `${text.slice(0, MAX_TOOL_OUTPUT_CHARS)}\n[output cut at ${MAX_TOOL_OUTPUT_CHARS} characters]` : text;
}
