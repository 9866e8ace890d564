import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether a redis-server binary is on PATH. */
export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether Redis tests run here. Without a redis-server they are skipped with a loud message, except
 * under CI, where a missing Redis is a failure (CI installs it).
 */
export function redisTestsEnabled(): boolean {
  // Every Redis test starts (and kills, pauses, restarts) its own servers, so the binary is what counts.
  if (redisAvailable()) return true;
  if (process.env.CI === 'true') throw new Error('redis-server is not installed; CI must install the redis-server package');
  console.warn('\n*** redis-server not found: Redis tests are SKIPPED. Install the Debian package redis-server. ***\n');
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface RedisProcess {
  port: number;
  url: string;
  process: ChildProcess;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that stops answering without closing connections. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

async function waitForPing(port: number, deadlineMs = 10_000): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < deadlineMs) {
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout?.trim() === 'PONG') return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer PING`);
}

/** Starts a throw-away redis-server on a free loopback port (no persistence). */
export async function startRedis(options: { port?: number; args?: string[] } = {}): Promise<RedisProcess> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(options.args ?? [])],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitForPing(port);
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill(signal);
    }
    await exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    process: child,
    kill: () => end('SIGKILL'),
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop: async () => {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  nodes: RedisProcess[];
  seeds: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Three masters on loopback, joined with `redis-cli --cluster create`, all slots covered. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const nodes: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    nodes.push(
      await startRedis({
        port,
        args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'],
      }),
    );
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  // Wait until every node agrees the cluster is up.
  const started = Date.now();
  for (const node of nodes) {
    for (;;) {
      const info = spawnSync('redis-cli', ['-p', String(node.port), 'cluster', 'info'], { encoding: 'utf8' });
      if (info.stdout.includes('cluster_state:ok')) break;
      if (Date.now() - started > 20_000) throw new Error('Redis Cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    nodes,
    seeds: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
