/**
 * 4. End to end: requests/s and p99 latency of POST /v1/messages on real gateway processes, with the
 * rate limiter enabled (memory, 30/m per user), enabled with `headers: "none"` (its decision without
 * the rate-limit headers), and disabled (`"enabled": false`), driven by autocannon from a second
 * process over loopback. All gateways run throughout; runs take turns between them. 100,000 users in
 * rotation, so every request is admitted (the limiter's work, not its 429s).
 */
import { spawn } from 'node:child_process';
import { canPin, onCpu } from '../lib/cpu.ts';
import { USER_RATE } from '../lib/fixtures.ts';
import { gatewayConfig, startGateway, type GatewayProcess } from '../lib/gateway.ts';
import { interleave, median, pairedRatio, type Plan } from '../lib/measure.ts';
import { LOAD, RATE_LIMITER_PATH, REPO_ROOT } from '../lib/paths.ts';

/**
 * The gateways run on one CPU and the load generator on the other, where the machine allows it: left
 * to the scheduler, the two sometimes shared a core, which moved the figures by a fifth between runs.
 * Only one gateway is under load at a time.
 */
const GATEWAY_CPU = 0;
const LOAD_CPU = 1;

export interface EndToEndParams extends Plan {
  users: number;
  durationS: number;
  connections: number;
}

interface LoadResult {
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statuses: Record<string, number>;
}

export interface EndToEndSide {
  requestsPerSecond: number;
  runs: number[];
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

export interface EndToEndResult {
  users: number;
  connections: number;
  durationS: number;
  enabled: EndToEndSide;
  /** Enabled, with headers "none": what the limiter costs without its response headers. */
  noHeaders: EndToEndSide;
  disabled: EndToEndSide;
  /** 1 - enabled/disabled requests/s (median of per-run pairs): what the limiter costs. */
  cost: number;
  /** The same for the gateway with headers "none". */
  costNoHeaders: number;
  /** Gateways and load generator on separate CPUs (taskset). */
  pinned: boolean;
}

function load(url: string, params: EndToEndParams): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const { command, args } = onCpu(LOAD_CPU, process.execPath, [
      '--import',
      'tsx',
      LOAD,
      JSON.stringify({ url, users: params.users, durationS: params.durationS, connections: params.connections }),
    ]);
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as LoadResult);
      } catch (error) {
        reject(error);
      }
    });
  });
}

function side(samples: LoadResult[]): EndToEndSide {
  const runs = samples.map((s) => s.requests / s.seconds);
  return {
    requestsPerSecond: median(runs),
    runs: runs.map(Math.round),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    errors: samples.reduce((n, s) => n + s.errors + s.timeouts, 0),
    non2xx: samples.reduce((n, s) => n + s.non2xx, 0),
  };
}

export async function runEndToEnd(params: EndToEndParams, log: (line: string) => void): Promise<EndToEndResult> {
  log('end to end: starting two gateways');
  const entry = (enabled: boolean, extra: Record<string, unknown> = {}) => ({
    name: 'rate_limiter',
    path: RATE_LIMITER_PATH,
    enabled,
    config: { by_user: USER_RATE.text, ...extra },
  });
  const gateways: GatewayProcess[] = [];
  try {
    const enabled = await startGateway(gatewayConfig([entry(true)]), undefined, GATEWAY_CPU);
    gateways.push(enabled);
    const noHeaders = await startGateway(gatewayConfig([entry(true, { headers: 'none' })]), undefined, GATEWAY_CPU);
    gateways.push(noHeaders);
    const disabled = await startGateway(gatewayConfig([entry(false)]), undefined, GATEWAY_CPU);
    gateways.push(disabled);
    const samples = await interleave(
      [
        { name: 'enabled', run: () => load(enabled.url, params) },
        { name: 'noHeaders', run: () => load(noHeaders.url, params) },
        { name: 'disabled', run: () => load(disabled.url, params) },
      ],
      params,
      { progress: (round) => log(`end to end: round ${round + 1} of ${params.warmup + params.runs}`) },
    );
    const rps = (name: string) => samples[name]!.map((s) => s.requests / s.seconds);
    return {
      users: params.users,
      connections: params.connections,
      durationS: params.durationS,
      enabled: side(samples.enabled!),
      noHeaders: side(samples.noHeaders!),
      disabled: side(samples.disabled!),
      cost: 1 - pairedRatio(rps('enabled'), rps('disabled')),
      costNoHeaders: 1 - pairedRatio(rps('noHeaders'), rps('disabled')),
      pinned: canPin(),
    };
  } finally {
    await Promise.all(gateways.map((g) => g.stop()));
  }
}
