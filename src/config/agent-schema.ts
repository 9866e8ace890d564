import { z } from 'zod';

/** A POSIX environment variable name: the file names where a secret is, never the secret itself. */
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name (letters, digits, _)' });

const ms = (max: number) => z.number().int().min(1).max(max);

/** What OpenAI-compatible servers call a function's name; MCP server names follow the same rule. */
const toolishName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -' });

/** A setting that must not be in the file: refused with `message`, whatever its value. */
const forbidden = (message: string) =>
  z.unknown().optional().superRefine((value, ctx) => {
    if (value !== undefined) ctx.addIssue({ code: 'custom', message });
  });

/**
 * One MCP server: a program the gateway starts and talks to over stdio (`command`), or a server
 * already running, reached over Streamable HTTP (`url`). Exactly one of the two.
 */
export const McpServerSchema = z
  .strictObject({
    name: toolishName,
    command: z.string().min(1).optional(),
    args: z.array(z.string()).default([]),
    /** The program's working folder, relative to the config file's folder (the default). */
    cwd: z.string().min(1).optional(),
    /** Extra environment for the program, on top of a minimal safe one (PATH, HOME, ...). */
    env: z.record(envName, z.string()).default({}),
    /** Gateway environment variables passed on to the program by name (for its secrets). */
    pass_env: z.array(envName).default([]),
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    /** Names the environment variable whose value is sent as `Authorization: Bearer ...` to `url`. */
    bearer_token_env: envName.optional(),
    /** Only these of the server's tools are offered to the model (default: all of them). */
    tools: z.array(z.string().min(1)).min(1).optional(),
    startup_timeout_ms: ms(300_000).default(20_000),
    call_timeout_ms: ms(600_000).default(30_000),
  })
  .superRefine((server, ctx) => {
    if ((server.command === undefined) === (server.url === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: 'set exactly one of "command" (a program over stdio) and "url" (Streamable HTTP)' });
    }
    if (server.url !== undefined) {
      for (const field of ['cwd', 'env', 'pass_env', 'args'] as const) {
        const value = server[field];
        const empty = value === undefined || (Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0);
        if (!empty) ctx.addIssue({ code: 'custom', path: [field], message: 'only for a server started with "command"' });
      }
    }
    if (server.command !== undefined && server.bearer_token_env !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['bearer_token_env'], message: 'only for a server reached by "url"' });
    }
  });
export type McpServerConfig = z.infer<typeof McpServerSchema>;

const HistorySchema = z.strictObject({
  /** Exchanges (a user message and its answer) kept per conversation; 0 keeps none. */
  turns: z.number().int().min(0).max(1000).default(20),
  /** Conversations kept in memory; past it the least recently used goes. */
  max_conversations: z.number().int().min(1).max(10_000_000).default(10_000),
  /** Characters kept per conversation; the oldest exchanges go first. */
  max_chars: z.number().int().min(1).max(10_000_000).default(32_000),
  /** A conversation nobody wrote in for this long is forgotten. */
  idle_ms: ms(30 * 86_400_000).default(3_600_000),
});
const HISTORY_DEFAULTS = HistorySchema.parse({});

export const OpenAiAgentSchema = z
  .strictObject({
    kind: z.literal('openai'),
    base_url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).default('https://api.openai.com/v1'),
    model: z.string().min(1),
    /** Where the API key is: the name of an environment variable. Unset: no key (a local server). */
    api_key_env: envName.optional(),
    api_key: forbidden('the API key is never read from the file: put it in an environment variable and name it in "api_key_env"'),
    system_prompt: z.string().max(100_000).optional(),
    max_output_tokens: z.number().int().min(1).max(1_000_000).default(1024),
    /** The request field that carries max_output_tokens (newer OpenAI models take only max_completion_tokens). */
    max_tokens_field: z.enum(['max_tokens', 'max_completion_tokens']).default('max_tokens'),
    temperature: z.number().min(0).max(2).optional(),
    /** The whole of one model call, first byte to last. */
    timeout_ms: ms(600_000).default(60_000),
    /** Rounds of tool calls one message may take before the agent stops the model. */
    max_tool_rounds: z.number().int().min(0).max(50).default(4),
    /** The encoding the prompt is counted in for estimates (o200k_base: GPT-4o and later). */
    tokenizer: z.enum(['o200k_base', 'cl100k_base']).default('o200k_base'),
    history: HistorySchema.default(HISTORY_DEFAULTS),
    mcp_servers: z.array(McpServerSchema).default([]),
  })
  .superRefine((agent, ctx) => {
    const seen = new Set<string>();
    agent.mcp_servers.forEach((server, i) => {
      if (seen.has(server.name)) ctx.addIssue({ code: 'custom', path: ['mcp_servers', i, 'name'], message: `"${server.name}" is used by another server` });
      seen.add(server.name);
    });
  });
export type OpenAiAgentConfig = z.infer<typeof OpenAiAgentSchema>;

export const DemoAgentSchema = z.strictObject({ kind: z.literal('demo') });

/** `agent`: who answers messages. The demo agent (offline, the default) or a model behind an OpenAI-compatible API. */
export const AgentConfigSchema = z.discriminatedUnion('kind', [DemoAgentSchema, OpenAiAgentSchema], {
  error: (issue) => {
    if (issue.code !== 'invalid_union') return undefined;
    const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
    return `${kind === undefined ? 'required field is missing' : `${JSON.stringify(kind)} is not allowed`}; expected one of "demo", "openai"`;
  },
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/**
 * The environment variables the agent config names that are not set: each is a startup problem
 * (the secret they carry is looked up here and again when the agent starts, never copied into the config).
 */
export function missingAgentEnv(agent: AgentConfig, env: NodeJS.ProcessEnv): string[] {
  if (agent.kind !== 'openai') return [];
  const problems: string[] = [];
  const unset = (name: string) => env[name] === undefined || env[name] === '';
  if (agent.api_key_env !== undefined && unset(agent.api_key_env)) {
    problems.push(`agent.api_key_env: the environment variable ${agent.api_key_env} is not set (the API key is read from it)`);
  }
  agent.mcp_servers.forEach((server, i) => {
    if (server.bearer_token_env !== undefined && unset(server.bearer_token_env)) {
      problems.push(`agent.mcp_servers[${i}].bearer_token_env: the environment variable ${server.bearer_token_env} is not set`);
    }
  });
  return problems;
}
