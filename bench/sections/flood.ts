/**
 * 7. A flood that costs Redis nothing: one subject floods three gateway processes that share one
 * redis-server, with the refusal cache (the default) and without it (`refusal_cache: false`), the two
 * sets of gateways taking turns round after round. The subject is refused throughout (its limit is
 * long used up), so every answer is a refusal. For each: refused requests/s over all three gateways,
 * and what Redis did for them, from `INFO commandstats` read before and after each run: commands per
 * refused request, decision scripts (EVALSHA) per refused request, and Redis's CPU time per refused
 * request (the commands' usec).
 */
import { Agent, request } from 'node:http';
import { Redis } from 'ioredis';
import { gatewayConfig, startGateway, type GatewayProcess } from '../lib/gateway.ts';
import { interleave, median, pairedRatio, rateFigure, round, sleep, type Plan, type RateFigure } from '../lib/measure.ts';
import { RATE_LIMITER_PATH } from '../lib/paths.ts';

export interface FloodParams extends Plan {
  redisUrl: string;
  instances: number;
  clientsPerInstance: number;
  durationMs: number;
}

/** Who floods, and how a request of theirs looks. */
interface FloodSubject {
  name: string;
  /** The limiter's settings that refuse this subject (after its first few requests). */
  limiter: Record<string, unknown>;
  path: string;
  body: string;
}

/**
 * The subjects measured. Per-address limits add their row here: a subject whose `limiter` limits by
 * client address, every request from the one loopback address (any user id), e.g. "one address".
 */
const SUBJECTS: FloodSubject[] = [
  {
    name: 'one user',
    limiter: { by_user: '10/h' },
    path: '/v1/messages',
    body: JSON.stringify({ user_id: 'flooder', text: 'hello' }),
  },
  {
    // Every request from the load generator's one address, by a user with room to spare: only the address limit binds.
    name: 'one address',
    limiter: { by_user: '1000000/h', by_address: { rate: '10/h' } },
    path: '/v1/messages',
    body: JSON.stringify({ user_id: 'anyone', text: 'hello' }),
  },
];

/** One run of one variant. */
interface FloodRun {
  refused: number;
  admitted: number;
  /** Anything but 429 and 200 (a 503 would mean Redis was too slow for the run). */
  other: number;
  seconds: number;
  commands: number;
  evalsha: number;
  redisUs: number;
}

export interface FloodVariant {
  name: 'refusal cache' | 'no cache';
  refusedPerSecond: RateFigure;
  commandsPerRefused: number;
  evalshaPerRefused: number;
  redisUsPerRefused: number;
  admitted: number;
  refused: number;
  other: number;
}

export interface FloodRow {
  subject: string;
  cache: FloodVariant;
  noCache: FloodVariant;
  /** Refused requests/s with the cache over without it (median of per-round ratios). */
  speedup: number;
  /** Redis CPU time per refused request without the cache over with it (median of per-round ratios). */
  redisWorkSaved: number;
  /** Redis commands per refused request without the cache over with it (median of per-round ratios). */
  commandsSaved: number;
}

export interface FloodResult {
  instances: number;
  clientsPerInstance: number;
  durationMs: number;
  rows: FloodRow[];
}

/** Calls and usec per command, without the bench's own INFO. */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const [, name, calls, usec] of (await redis.info('commandstats')).matchAll(/cmdstat_([^:]+):calls=(\d+),usec=(\d+)/g)) {
    if (name !== 'info') stats.set(name!, { calls: Number(calls), usec: Number(usec) });
  }
  return stats;
}

function difference(before: Map<string, { calls: number; usec: number }>, after: Map<string, { calls: number; usec: number }>) {
  let commands = 0;
  let usec = 0;
  for (const [name, { calls, usec: spent }] of after) {
    commands += calls - (before.get(name)?.calls ?? 0);
    usec += spent - (before.get(name)?.usec ?? 0);
  }
  const evalsha = (after.get('evalsha')?.calls ?? 0) - (before.get('evalsha')?.calls ?? 0);
  return { commands, usec, evalsha };
}

function post(agent: Agent, port: number, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** `clients` requests in flight per gateway for `durationMs`. */
async function flood(gateways: readonly GatewayProcess[], agents: readonly Agent[], subject: FloodSubject, clients: number, durationMs: number) {
  let refused = 0;
  let admitted = 0;
  let other = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    gateways.flatMap((gateway, g) =>
      Array.from({ length: clients }, async () => {
        while (performance.now() < deadline) {
          const status = await post(agents[g]!, gateway.port, subject.path, subject.body);
          if (status === 429) refused++;
          else if (status === 200) admitted++;
          else other++;
        }
      }),
    ),
  );
  return { refused, admitted, other, seconds: (performance.now() - started) / 1000 };
}

function variantFigure(name: FloodVariant['name'], runs: readonly FloodRun[]): FloodVariant {
  const per = (f: (r: FloodRun) => number) => median(runs.map((r) => (r.refused === 0 ? Number.NaN : f(r) / r.refused)));
  return {
    name,
    refusedPerSecond: rateFigure(runs.map((r) => ({ ops: r.refused, seconds: r.seconds }))),
    commandsPerRefused: round(per((r) => r.commands), 4),
    evalshaPerRefused: round(per((r) => r.evalsha), 4),
    redisUsPerRefused: round(per((r) => r.redisUs), 3),
    admitted: runs.reduce((sum, r) => sum + r.admitted, 0),
    refused: runs.reduce((sum, r) => sum + r.refused, 0),
    other: runs.reduce((sum, r) => sum + r.other, 0),
  };
}

export async function runFlood(params: FloodParams, log: (line: string) => void): Promise<FloodResult> {
  const redis = new Redis(params.redisUrl, { maxRetriesPerRequest: 1 });
  const rows: FloodRow[] = [];
  try {
    for (const subject of SUBJECTS) {
      const variants = [
        { name: 'refusal cache' as const, refusal_cache: true },
        { name: 'no cache' as const, refusal_cache: false },
      ];
      const started: { name: FloodVariant['name']; gateways: GatewayProcess[]; agents: Agent[] }[] = [];
      try {
        for (const variant of variants) {
          log(`flood (${subject.name}): ${params.instances} gateways, ${variant.name}`);
          const config = gatewayConfig([
            {
              name: 'rate_limiter',
              path: RATE_LIMITER_PATH,
              config: {
                ...subject.limiter,
                backend: 'redis',
                redis_url: params.redisUrl,
                redis_key_prefix: `flood-${variant.refusal_cache ? 'cache' : 'direct'}-${Date.now()}`,
                // A loaded machine must not turn a slow answer into a local one: a 503 would show it.
                redis_timeout_ms: 1_000,
                on_backend_error: 'closed',
                refusal_cache: variant.refusal_cache,
              },
            },
          ]);
          const gateways: GatewayProcess[] = [];
          const agents: Agent[] = [];
          started.push({ name: variant.name, gateways, agents });
          for (const gateway of await Promise.all(Array.from({ length: params.instances }, () => startGateway(config)))) {
            gateways.push(gateway);
            agents.push(new Agent({ keepAlive: true, maxSockets: params.clientsPerInstance }));
          }
          // Used up, and refused a few times on every gateway (the cache reads the state on the second).
          for (let i = 0; i < 20; i++) await Promise.all(gateways.map((g, n) => post(agents[n]!, g.port, subject.path, subject.body)));
        }
        await sleep(200);
        const samples = await interleave<FloodRun>(
          started.map(({ name, gateways, agents }) => ({
            name,
            run: async () => {
              const before = await commandStats(redis);
              const figures = await flood(gateways, agents, subject, params.clientsPerInstance, params.durationMs);
              const { commands, usec, evalsha } = difference(before, await commandStats(redis));
              return { ...figures, commands, evalsha, redisUs: usec };
            },
          })),
          params,
          { progress: (r) => log(`flood (${subject.name}): round ${r + 1} of ${params.warmup + params.runs}`) },
        );
        const cache = samples['refusal cache']!;
        const noCache = samples['no cache']!;
        rows.push({
          subject: subject.name,
          cache: variantFigure('refusal cache', cache),
          noCache: variantFigure('no cache', noCache),
          speedup: round(pairedRatio(cache.map((r) => r.refused / r.seconds), noCache.map((r) => r.refused / r.seconds)), 3),
          commandsSaved: round(
            pairedRatio(
              noCache.map((r) => r.commands / r.refused),
              cache.map((r) => Math.max(r.commands, 1) / r.refused),
            ),
            1,
          ),
          redisWorkSaved: round(
            pairedRatio(
              noCache.map((r) => r.redisUs / r.refused),
              cache.map((r) => Math.max(r.redisUs, 1) / r.refused),
            ),
            1,
          ),
        });
      } finally {
        for (const { agents } of started) for (const agent of agents) agent.destroy();
        await Promise.all(started.flatMap(({ gateways }) => gateways.map((g) => g.stop())));
      }
    }
  } finally {
    redis.disconnect();
  }
  return { instances: params.instances, clientsPerInstance: params.clientsPerInstance, durationMs: params.durationMs, rows };
}
