import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');
export const RATE_LIMITER_PATH = join(REPO_ROOT, 'plugins/rate-limiter/index.ts');

/** Writes a config file into a fresh temporary folder and returns its path. */
export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-e2e-'));
  const path = join(dir, 'config.json');
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return path;
}

/** A config with the HTTP channel on a free port and the given plugins. */
export function gatewayConfig(plugins: unknown[]): Record<string, unknown> {
  return { channels: { http: { host: '127.0.0.1', port: 0 } }, plugins };
}

export function rateLimiterEntry(config: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { name: 'rate_limiter', path: RATE_LIMITER_PATH, mode: 'enforce', priority: 10, config, ...extra };
}

export interface RunningGateway {
  url: string;
  process: ChildProcess;
  /** Every stdout line so far (pino JSON). */
  stdout: string[];
  stderr: string[];
  /** Parsed JSON log lines. */
  logs(): Record<string, unknown>[];
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Spawns `src/main.ts --config <file>` as a real process, exactly as `npm start` runs it. */
export function spawnGateway(configPath: string, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; stdout: string[]; stderr: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/main.ts'), '--config', configPath], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => stdout.push(line));
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  return { child, stdout, stderr, exited };
}

function parseLines(lines: readonly string[]): Record<string, unknown>[] {
  return lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Starts a gateway and waits until its HTTP channel logs the port it bound. */
export async function startGateway(config: unknown, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway> {
  const { child, stdout, stderr, exited } = spawnGateway(writeConfig(config), env);
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setInterval(() => {
      const listening = parseLines(stdout).find((l) => l.msg === 'http channel listening');
      if (listening) {
        clearInterval(timer);
        resolvePort(listening.port as number);
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${stderr.join('\n')}\n${stdout.join('\n')}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    process: child,
    stdout,
    stderr,
    exited,
    logs: () => parseLines(stdout),
    stop: () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface MessageResult {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  raw: string;
}

export async function sendMessage(url: string, body: unknown): Promise<MessageResult> {
  const response = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const raw = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(raw) as Record<string, unknown>, raw };
}
