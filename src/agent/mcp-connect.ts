import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { McpServerConfig } from '../config/agent-schema.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** Lines of a stdio server's stderr kept to explain a failed start. */
const STDERR_TAIL_LINES = 5;
/** Pages of tools/list read at most (a server that pages forever is not waited for). */
const MAX_TOOL_PAGES = 50;

export interface ConnectDeps {
  logger: Logger;
  /** Relative `cwd`s are resolved against it: the config file's folder. */
  configDir: string;
  env: NodeJS.ProcessEnv;
  /** The client's name and version in the MCP handshake. */
  clientInfo: { name: string; version: string };
}

/** One MCP server, connected, with the tools it listed. */
export interface ConnectedServer {
  config: McpServerConfig;
  client: Client;
  tools: Tool[];
}

/**
 * Starts (stdio) or reaches (Streamable HTTP) one MCP server, completes the handshake and lists its
 * tools, all within `startup_timeout_ms`. Throws an Error saying what failed, with the last lines
 * the program wrote to stderr; whatever was started is closed first.
 */
export async function connectServer(config: McpServerConfig, deps: ConnectDeps): Promise<ConnectedServer> {
  const client = new Client(deps.clientInfo, { capabilities: {} });
  const stderrTail: string[] = [];
  const transport = config.command !== undefined ? stdioTransport(config, deps, stderrTail) : httpTransport(config, deps.env);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within startup_timeout_ms (${config.startup_timeout_ms} ms)`)), config.startup_timeout_ms);
  });
  try {
    const tools = await Promise.race([
      (async () => {
        await client.connect(transport, { timeout: config.startup_timeout_ms });
        return listTools(client, config.startup_timeout_ms);
      })(),
      deadline,
    ]);
    return { config, client, tools };
  } catch (error) {
    await client.close().catch(() => undefined);
    const tail = stderrTail.length > 0 ? ` (its stderr ended: ${stderrTail.join(' | ')})` : '';
    throw new Error(`${errorMessage(error)}${tail}`);
  } finally {
    clearTimeout(timer);
  }
}

async function listTools(client: Client, timeout: number): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_TOOL_PAGES; page++) {
    const listed = await client.listTools(cursor === undefined ? undefined : { cursor }, { timeout });
    tools.push(...listed.tools);
    cursor = listed.nextCursor;
    if (cursor === undefined) break;
  }
  return tools;
}

function stdioTransport(config: McpServerConfig, deps: ConnectDeps, stderrTail: string[]): StdioClientTransport {
  // The SDK adds a minimal environment (PATH, HOME, ...); secrets only when the config names them.
  const env: Record<string, string> = {};
  for (const name of config.pass_env) {
    const value = deps.env[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, config.env);
  const transport = new StdioClientTransport({
    command: config.command!,
    args: config.args,
    env,
    cwd: resolve(deps.configDir, config.cwd ?? '.'),
    stderr: 'pipe',
  });
  // Its stderr goes to the debug log, and its last lines explain a failed start.
  const logger = deps.logger.child({ mcp_server: config.name });
  const stderr = transport.stderr;
  if (stderr !== null) {
    createInterface({ input: stderr as unknown as NodeJS.ReadableStream }).on('line', (line) => {
      stderrTail.push(line.length > 200 ? `${line.slice(0, 200)}...` : line);
      if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
      logger.debug({ line }, 'mcp server stderr');
    });
  }
  return transport;
}

function httpTransport(config: McpServerConfig, env: NodeJS.ProcessEnv): StreamableHTTPClientTransport {
  const headers: Record<string, string> = {};
  if (config.bearer_token_env !== undefined) headers.authorization = `Bearer ${env[config.bearer_token_env] ?? ''}`;
  return new StreamableHTTPClientTransport(new URL(config.url!), { requestInit: { headers } });
}
