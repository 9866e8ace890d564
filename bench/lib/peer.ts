/** Peer server processes (bench/peer-server.ts: fastify or express) for the end-to-end section. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { PeerParams } from '../peer-server.ts';
import { onCpu } from './cpu.ts';
import { PEER_SERVER, REPO_ROOT } from './paths.ts';

export interface PeerProcess {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A bench interrupted or failing must not leave servers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `cpu`: the one CPU the server runs on, when the machine can pin processes (see cpu.ts). */
export async function startPeer(params: PeerParams, cpu?: number, timeoutMs = 30_000): Promise<PeerProcess> {
  const { command, args } = onCpu(cpu, process.execPath, ['--import', 'tsx', PEER_SERVER, JSON.stringify(params)]);
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const deadline = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(deadline);
    running.delete(child);
  };
  const name = `${params.framework}${params.limiter ? ' with its limiter' : ''}`;
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not listen within ${timeoutMs} ms:\n${stderr.join('\n')}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const { port } = JSON.parse(line) as { port?: unknown };
        if (typeof port !== 'number') return;
        clearTimeout(timer);
        resolve(port);
      } catch {
        // Not the port line.
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening:\n${stderr.join('\n')}`));
    });
  });
  let port: number;
  try {
    port = await listening;
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, stop: () => stop() };
}
