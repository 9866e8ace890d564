import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
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

/** How long a gateway may take to listen before startGateway kills it and fails. */
export const START_TIMEOUT_MS = 15_000;

/**
 * Starts a gateway and waits until its HTTP channel logs the port it bound. A gateway that has not
 * listened within START_TIMEOUT_MS is killed (so a hung startup fails the test instead of leaking a
 * process). The temporary config folder is removed once the process has exited.
 */
export async function startGateway(config: unknown, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway> {
  const configPath = writeConfig(config);
  const gateway = await startGatewayFrom(configPath, env);
  void gateway.exited.then(() => rmSync(dirname(configPath), { recursive: true, force: true }));
  return gateway;
}

/** Starts a gateway on a config file the caller keeps (and may rewrite, e.g. to test reloads). */
export async function startGatewayFrom(configPath: string, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway> {
  const { child, stdout, stderr, exited } = spawnGateway(configPath, env);
  const port = await new Promise<number>((resolvePort, reject) => {
    const started = performance.now();
    const timer = setInterval(() => {
      const listening = parseLines(stdout).find((l) => l.msg === 'http channel listening');
      if (listening) {
        clearInterval(timer);
        resolvePort(listening.port as number);
      } else if (performance.now() - started > START_TIMEOUT_MS) {
        clearInterval(timer);
        child.kill('SIGKILL');
        reject(new Error(`gateway did not listen within ${START_TIMEOUT_MS} ms:\n${stderr.join('\n')}\n${stdout.join('\n')}`));
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

/**
 * Starts several gateways from one config at once (they bind different free ports). If any fails to
 * start, the others are stopped before the error is thrown, so nothing is left running.
 */
export async function startGateways(count: number, config: unknown, env: NodeJS.ProcessEnv = {}): Promise<RunningGateway[]> {
  const settled = await Promise.allSettled(Array.from({ length: count }, () => startGateway(config, env)));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((g) => g.stop()));
    throw failed.reason;
  }
  return started;
}

/** Log lines whose `msg` starts with `prefix`. */
export function logLines(gateway: RunningGateway, prefix: string): Record<string, unknown>[] {
  return gateway.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix));
}

/** Waits until the gateway has logged a line whose `msg` starts with `prefix`; throws after `timeoutMs`. */
export async function waitForLog(gateway: RunningGateway, prefix: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const line = logLines(gateway, prefix)[0];
    if (line) return line;
    if (performance.now() > deadline) {
      throw new Error(`no log line "${prefix}..." within ${timeoutMs} ms:\n${gateway.stdout.join('\n')}\n${gateway.stderr.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A message result with client-side times (performance.now(), ms): the decision was made in between. */
export interface TimedResult extends MessageResult {
  /** Which gateway (index into the list the flood was spread over) answered. */
  target: number;
  sentAt: number;
  answeredAt: number;
  latencyMs: number;
}

export async function sendTimed(url: string, body: unknown, target = 0): Promise<TimedResult> {
  const sentAt = performance.now();
  const result = await sendMessage(url, body);
  const answeredAt = performance.now();
  return { ...result, target, sentAt, answeredAt, latencyMs: answeredAt - sentAt };
}

export interface Flood {
  /** Every request answered so far, in the order the answers came. */
  results: TimedResult[];
  /** Requests sent so far. */
  sent(): number;
  /** Stops sending and resolves once every request in flight has its answer. */
  stop(): Promise<TimedResult[]>;
}

/**
 * Sends one request every `intervalMs` without waiting for answers, round-robin over `urls`, until
 * stopped. A request that fails at the transport level rejects `stop()`: every request must be answered.
 */
export function startFlood(urls: readonly string[], body: (i: number) => unknown, intervalMs: number): Flood {
  const results: TimedResult[] = [];
  const inFlight = new Set<Promise<void>>();
  const errors: unknown[] = [];
  let count = 0;
  let running = true;
  const loop = (async () => {
    const started = performance.now();
    while (running) {
      const i = count++;
      const target = i % urls.length;
      const request = sendTimed(urls[target]!, body(i), target).then(
        (r) => void results.push(r),
        (error: unknown) => void errors.push(error),
      );
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
      // Steady pace against the start time, so a slow tick does not shift every later one.
      const next = started + (i + 1) * intervalMs;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
  })();
  return {
    results,
    sent: () => count,
    stop: async () => {
      running = false;
      await loop;
      await Promise.all(inFlight);
      if (errors.length > 0) throw new AggregateError(errors, `${errors.length} of ${count} flood requests got no answer`);
      return results;
    },
  };
}

export interface PostResult {
  status: number;
  headers: Headers;
  /** The body as sent by the gateway ('' when there is none). */
  raw: string;
  /** The body parsed as JSON, or undefined when it is empty. */
  body: Record<string, unknown> | undefined;
}

/** POSTs `body` (sent exactly as given, so signatures over it hold) to any path of the gateway. */
export async function postRaw(url: string, path: string, body: string, headers: Record<string, string> = {}): Promise<PostResult> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const raw = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    raw,
    body: raw === '' ? undefined : (JSON.parse(raw) as Record<string, unknown>),
  };
}
