import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ErrorCode, FloodgateError, errorMessage, problemsError } from '../errors.ts';
import { formatIssues } from './issues.ts';
import { missingAgentEnv } from './agent-schema.ts';
import { GatewayConfigSchema, type GatewayConfig } from './schema.ts';

export interface LoadedConfig {
  config: GatewayConfig;
  /** Absolute path of the file, for error messages and for resolving plugin paths. */
  path: string;
  dir: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `raw[key]`, created when absent; anything that is not an object is left for the schema to report. */
function section(raw: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  if (raw[key] === undefined) raw[key] = {};
  const value = raw[key];
  return isObject(value) ? value : undefined;
}

/** Environment overrides, so several instances can share one file (each on its own port). */
function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  const port = env.FLOODGATE_HTTP_PORT;
  if (port !== undefined && port !== '') {
    // Digits only: Number() would read " " as 0 (a random port) and "0x50" as 80.
    const value = /^\d+$/.test(port.trim()) ? Number(port) : NaN;
    if (!Number.isInteger(value) || value < 0 || value > 65535) {
      problems.push(`FLOODGATE_HTTP_PORT: expected a port number 0-65535, got ${JSON.stringify(port)}`);
    } else {
      const channels = section(raw, 'channels');
      const http = channels && section(channels, 'http');
      if (http) http.port = value;
    }
  }
  const level = env.FLOODGATE_LOG_LEVEL;
  if (level) {
    const log = section(raw, 'log');
    if (log) log.level = level;
  }
}

/** Reads and validates config.json; every problem is listed in one error that names the file. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    throw new FloodgateError(ErrorCode.Config, `${absolute}: cannot read config file (${errorMessage(error)})`);
  }
  return parseConfig(text, absolute, env);
}

export function parseConfig(text: string, absolute: string, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FloodgateError(ErrorCode.Config, `${absolute}: not valid JSON (${errorMessage(error)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FloodgateError(ErrorCode.Config, `${absolute}: expected a JSON object at the top level`);
  }
  const problems: string[] = [];
  applyEnv(raw as Record<string, unknown>, env, problems);
  const result = GatewayConfigSchema.safeParse(raw, { reportInput: true });
  if (!result.success) problems.push(...formatIssues(result.error, GatewayConfigSchema));
  else problems.push(...missingAgentEnv(result.data.agent, env));
  if (problems.length > 0 || !result.success) {
    throw problemsError(ErrorCode.Config, `${absolute}: invalid configuration`, problems);
  }
  return { config: result.data, path: absolute, dir: dirname(absolute) };
}
