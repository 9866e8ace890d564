/**
 * Every error Floodgate raises on purpose carries a stable code, so operators can search for it and
 * tests can assert on it without matching prose.
 */
export const ErrorCode = {
  Config: 'FG_ERR_CONFIG',
  PluginLoad: 'FG_ERR_PLUGIN_LOAD',
  PluginManifest: 'FG_ERR_PLUGIN_MANIFEST',
  PluginConfig: 'FG_ERR_PLUGIN_CONFIG',
  HookUnknown: 'FG_ERR_HOOK_UNKNOWN',
  HookUndeclared: 'FG_ERR_HOOK_UNDECLARED',
  HookTimeout: 'FG_ERR_HOOK_TIMEOUT',
  HookResult: 'FG_ERR_HOOK_RESULT',
  BadRate: 'FG_ERR_BAD_RATE',
  AgentStart: 'FG_ERR_AGENT_START',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class FloodgateError extends Error {
  readonly code: ErrorCode;
  /** Every individual problem, for errors that collect several (config validation lists them all). */
  readonly problems: readonly string[];

  constructor(code: ErrorCode, message: string, options: { problems?: readonly string[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FloodgateError';
    this.code = code;
    this.problems = options.problems ?? [message];
  }
}

/** Builds one error whose message lists every problem, one per line, under a headline. */
export function problemsError(code: ErrorCode, headline: string, problems: readonly string[]): FloodgateError {
  const message = `${headline}\n${problems.map((p) => `  - ${p}`).join('\n')}`;
  return new FloodgateError(code, message, { problems });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
