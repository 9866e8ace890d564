/**
 * 4. End to end: requests/s, p99 latency and CPU per request of POST /v1/messages on real server
 * processes, driven by autocannon from a second process over loopback:
 *  - Floodgate gateways with the rate limiter enabled (memory, 30/m per user), enabled with
 *    `headers: "none"` (its decision without the rate-limit headers), and disabled (`"enabled": false`);
 *  - two peers on the same load, each with and without its usual limiter (in-memory store, 30/m keyed
 *    per user by the body's `user_id`, as ours): fastify 5 with @fastify/rate-limit and express 5
 *    with express-rate-limit (bench/peer-server.ts).
 * All servers run throughout; runs take turns between them. 100,000 users in rotation, so every
 * request is admitted (the limiter's work, not its 429s). Each run also reads the server process's
 * CPU time (user plus system, /proc/<pid>/stat) before and after, divided by the requests served.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerFramework } from '../peer-server.ts';
import { canPin, onCpu, processCpuUs } from '../lib/cpu.ts';
import { USER_RATE } from '../lib/fixtures.ts';
import { gatewayConfig, startGateway } from '../lib/gateway.ts';
import { interleave, median, pairedRatio, type Plan } from '../lib/measure.ts';
import { LOAD, RATE_LIMITER_PATH, REPO_ROOT } from '../lib/paths.ts';
import { startPeer } from '../lib/peer.ts';

/**
 * The servers run on one CPU and the load generator on the other, where the machine allows it: left
 * to the scheduler, the two sometimes shared a core, which moved the figures by a fifth between runs.
 * Only one server is under load at a time.
 */
const GATEWAY_CPU = 0;
const LOAD_CPU = 1;

/** Users a peer's store holds at most: Floodgate's `max_keys` default (fastify's store is an LRU). */
const PEER_MAX_KEYS = 100_000;

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

/** One run: the load's figures and the CPU time the server used meanwhile (µs; NaN without /proc). */
interface Sample extends LoadResult {
  cpuUs: number;
}

export interface EndToEndSide {
  requestsPerSecond: number;
  runs: number[];
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  /** The server process's CPU time (user plus system) per request served, in µs: median of the runs. */
  cpuUsPerRequest: number;
  cpuRuns: number[];
}

export type ServerName = 'floodgate' | 'fastify' | 'express';

/** One server with and without its limiter, on the same load. */
export interface ServerComparison {
  name: ServerName;
  /** The server and its version, e.g. "fastify 5.12.8". */
  server: string;
  /** The limiter and its version, e.g. "@fastify/rate-limit 11.2.0". */
  limiter: string;
  withLimiter: EndToEndSide;
  withoutLimiter: EndToEndSide;
  /** 1 - with/without requests/s (median of per-run pairs): what the limiter costs. */
  cost: number;
  /** With-limiter minus without-limiter CPU µs per request (median of per-run pairs). */
  limiterCpuUsPerRequest: number;
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
  /** Floodgate (enabled vs disabled), fastify and express, each with and without its limiter. */
  servers: ServerComparison[];
  /** Servers and load generator on separate CPUs (taskset). */
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

/** A run of the load against the server `pid` listens on, with the CPU time it used meanwhile. */
async function measured(server: { url: string; pid: number }, params: EndToEndParams): Promise<Sample> {
  const before = processCpuUs(server.pid);
  const result = await load(server.url, params);
  return { ...result, cpuUs: processCpuUs(server.pid) - before };
}

const cpuPerRequest = (s: Sample): number => (s.requests > 0 ? s.cpuUs / s.requests : Number.NaN);

function side(samples: Sample[]): EndToEndSide {
  const runs = samples.map((s) => s.requests / s.seconds);
  const cpu = samples.map(cpuPerRequest);
  return {
    requestsPerSecond: median(runs),
    runs: runs.map(Math.round),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    errors: samples.reduce((n, s) => n + s.errors + s.timeouts, 0),
    non2xx: samples.reduce((n, s) => n + s.non2xx, 0),
    cpuUsPerRequest: median(cpu),
    cpuRuns: cpu.map((c) => Math.round(c * 10) / 10),
  };
}

function version(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

const packageVersion = (name: string) => version(join(REPO_ROOT, 'node_modules', name));

interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Floodgate's three gateways, then each peer with and without its limiter. */
const CONTENDERS = ['enabled', 'noHeaders', 'disabled', 'fastifyLimiter', 'fastify', 'expressLimiter', 'express'] as const;

export async function runEndToEnd(params: EndToEndParams, log: (line: string) => void): Promise<EndToEndResult> {
  log('end to end: starting three gateways and four peer servers');
  const entry = (enabled: boolean, extra: Record<string, unknown> = {}) => ({
    name: 'rate_limiter',
    path: RATE_LIMITER_PATH,
    enabled,
    config: { by_user: USER_RATE.text, ...extra },
  });
  const peer = (framework: PeerFramework, limiter: boolean) =>
    startPeer({ framework, limiter, points: USER_RATE.points, seconds: USER_RATE.seconds, maxKeys: PEER_MAX_KEYS }, GATEWAY_CPU);
  // In the order of CONTENDERS.
  const starts = [
    startGateway(gatewayConfig([entry(true)]), undefined, GATEWAY_CPU),
    startGateway(gatewayConfig([entry(true, { headers: 'none' })]), undefined, GATEWAY_CPU),
    startGateway(gatewayConfig([entry(false)]), undefined, GATEWAY_CPU),
    peer('fastify', true),
    peer('fastify', false),
    peer('express', true),
    peer('express', false),
  ];
  const servers: Server[] = [];
  try {
    // Started together; every one that started is stopped, whichever failed.
    const started = await Promise.allSettled(starts);
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const samples = await interleave(
      CONTENDERS.map((name, i) => ({ name, run: () => measured(servers[i]!, params) })),
      params,
      { progress: (round) => log(`end to end: round ${round + 1} of ${params.warmup + params.runs}`) },
    );
    const rps = (name: string) => samples[name]!.map((s) => s.requests / s.seconds);
    const cpu = (name: string) => samples[name]!.map(cpuPerRequest);
    const compare = (name: ServerName, server: string, limiter: string, withName: string, withoutName: string): ServerComparison => {
      const withCpu = cpu(withName);
      const withoutCpu = cpu(withoutName);
      return {
        name,
        server,
        limiter,
        withLimiter: side(samples[withName]!),
        withoutLimiter: side(samples[withoutName]!),
        cost: 1 - pairedRatio(rps(withName), rps(withoutName)),
        limiterCpuUsPerRequest: median(withCpu.map((c, i) => c - withoutCpu[i]!)),
      };
    };
    return {
      users: params.users,
      connections: params.connections,
      durationS: params.durationS,
      enabled: side(samples.enabled!),
      noHeaders: side(samples.noHeaders!),
      disabled: side(samples.disabled!),
      cost: 1 - pairedRatio(rps('enabled'), rps('disabled')),
      costNoHeaders: 1 - pairedRatio(rps('noHeaders'), rps('disabled')),
      servers: [
        compare('floodgate', `Floodgate ${version(REPO_ROOT)}`, 'rate_limiter plugin (memory, sliding_window)', 'enabled', 'disabled'),
        compare('fastify', `fastify ${packageVersion('fastify')}`, `@fastify/rate-limit ${packageVersion('@fastify/rate-limit')}`, 'fastifyLimiter', 'fastify'),
        compare('express', `express ${packageVersion('express')}`, `express-rate-limit ${packageVersion('express-rate-limit')}`, 'expressLimiter', 'express'),
      ],
      pinned: canPin(),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}
