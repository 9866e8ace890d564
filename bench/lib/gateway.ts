/** Real gateway processes (`src/main.ts`, as `npm start` runs it) for the end-to-end sections. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { onCpu } from './cpu.ts';
import { MAIN, REPO_ROOT } from './paths.ts';

export interface GatewayProcess {
  url: string;
  port: number;
  pid: number;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A bench interrupted or failing must not leave gateways behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `cpu`: the one CPU the gateway runs on, when the machine can pin processes (see cpu.ts). */
export async function startGateway(config: Record<string, unknown>, timeoutMs = 30_000, cpu?: number): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-bench-'));
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  const { command, args } = onCpu(cpu, process.execPath, ['--import', 'tsx', MAIN, '--config', path]);
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, FLOODGATE_HTTP_PORT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let onListening: ((port: number) => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === 'http channel listening') onListening?.(entry.port as number);
    } catch {
      // Not a log line.
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  /** Stops the gateway (SIGTERM lets it finish gracefully; it is killed if it has not within 5 s). */
  const cleanUp = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const deadline = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(deadline);
    running.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not listen within ${timeoutMs} ms:\n${stderr.join('\n')}`)), timeoutMs);
    onListening = (p) => {
      clearTimeout(timer);
      resolve(p);
    };
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`gateway exited before listening:\n${stderr.join('\n')}`));
    });
  });
  let port: number;
  try {
    port = await listening;
  } catch (error) {
    await cleanUp('SIGKILL');
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    logs,
    stop: () => cleanUp('SIGTERM'),
  };
}

/** The HTTP channel on a free port; logs at info (the port is found from the "listening" line). */
export function gatewayConfig(plugins: unknown[]): Record<string, unknown> {
  return { channels: { http: { host: '127.0.0.1', port: 0 } }, log: { level: 'info' }, plugins };
}
