/**
 * 6. Accuracy across processes: one user floods three gateway processes that share one Redis, for a
 * few windows (N requests per W, W short so the section stays short; the algorithms do not depend on
 * W's length). Every admitted request's send and receive times are recorded on this machine's clock.
 * The admission itself happened (in Redis, on Redis time) somewhere between the two, so a window of
 * length W that contains a request's whole [send, receive] interval certainly contained its admission:
 * the most admissions any window certainly held is a lower bound of the truth, and what the sliding
 * window guarantees (never more than N) must hold of it. The gateways decide on Redis with a 1 s
 * timeout and `on_backend_error: "closed"`, so a slow Redis on a loaded machine refuses (counted as
 * 503s) rather than deciding in one process's memory.
 */
import { Agent, request } from 'node:http';
import { gatewayConfig, startGateway, type GatewayProcess } from '../lib/gateway.ts';
import { RATE_LIMITER_PATH } from '../lib/paths.ts';
import { sleep } from '../lib/measure.ts';
import type { AlgorithmName } from '../lib/fixtures.ts';

export interface AccuracyParams {
  redisUrl: string;
  algorithms: AlgorithmName[];
  limit: number;
  windowS: number;
  windows: number;
  instances: number;
  clientsPerInstance: number;
}

export interface AccuracyFigure {
  algorithm: AlgorithmName;
  limit: number;
  windowMs: number;
  /** Most admissions certainly inside one window of length W (see above). */
  maxInWindow: number;
  /** The same with each admission placed at the middle of its interval (an estimate). */
  maxInWindowEstimate: number;
  /** What the algorithm promises at most, in any window of length W. */
  bound: number;
  admitted: number;
  requests: number;
  unavailable: number;
  /** Largest send-to-receive interval of an admitted request (the uncertainty of its time). */
  worstIntervalMs: number;
}

export interface AccuracyResult {
  instances: number;
  figures: AccuracyFigure[];
}

interface Admission {
  sent: number;
  received: number;
}

function post(agent: Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** The most admissions whose whole [sent, received] interval fits inside one window of length W. */
function certainMax(admissions: readonly Admission[], windowMs: number): number {
  const bySent = [...admissions].sort((a, b) => a.sent - b.sent);
  let best = 0;
  for (let i = 0; i < bySent.length; i++) {
    const start = bySent[i]!.sent;
    let count = 0;
    for (let j = i; j < bySent.length && bySent[j]!.sent < start + windowMs; j++) if (bySent[j]!.received < start + windowMs) count++;
    best = Math.max(best, count);
  }
  return best;
}

function estimatedMax(admissions: readonly Admission[], windowMs: number): number {
  const times = admissions.map((a) => (a.sent + a.received) / 2).sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

const BOUNDS: Record<AlgorithmName, (n: number) => number> = {
  sliding_window: (n) => n,
  fixed_window: (n) => 2 * n,
  token_bucket: (n) => 2 * n,
};

export async function runAccuracy(params: AccuracyParams, log: (line: string) => void): Promise<AccuracyResult> {
  const windowMs = params.windowS * 1000;
  const figures: AccuracyFigure[] = [];
  for (const algorithm of params.algorithms) {
    log(`accuracy: ${algorithm}, ${params.instances} gateways on one redis`);
    const config = gatewayConfig(
      [
        {
          name: 'rate_limiter',
          path: RATE_LIMITER_PATH,
          config: {
            by_user: `${params.limit}/${params.windowS}s`,
            algorithm,
            backend: 'redis',
            redis_url: params.redisUrl,
            redis_key_prefix: `acc-${algorithm}-${Date.now()}`,
            redis_timeout_ms: 1_000,
            on_backend_error: 'closed',
          },
        },
      ],
    );
    const gateways: GatewayProcess[] = [];
    try {
      for (const g of await Promise.all(Array.from({ length: params.instances }, () => startGateway(config)))) gateways.push(g);
      // Start half way through a calendar-aligned window: a fixed window then shows its boundary burst.
      const phase = Date.now() % windowMs;
      await sleep((windowMs / 2 - phase + windowMs) % windowMs);
      const admissions: Admission[] = [];
      let requests = 0;
      let unavailable = 0;
      const body = JSON.stringify({ user_id: 'flooder', text: 'hello' });
      const deadline = performance.now() + params.windows * windowMs + windowMs / 2;
      const agents: Agent[] = [];
      await Promise.all(
        gateways.flatMap((gateway) => {
          const agent = new Agent({ keepAlive: true, maxSockets: params.clientsPerInstance });
          agents.push(agent);
          return Array.from({ length: params.clientsPerInstance }, async () => {
            while (performance.now() < deadline) {
              const sent = performance.now();
              const status = await post(agent, gateway.port, body);
              const received = performance.now();
              requests++;
              if (status === 200) admissions.push({ sent, received });
              else if (status === 503) unavailable++;
            }
          });
        }),
      );
      for (const agent of agents) agent.destroy();
      figures.push({
        algorithm,
        limit: params.limit,
        windowMs,
        maxInWindow: certainMax(admissions, windowMs),
        maxInWindowEstimate: estimatedMax(admissions, windowMs),
        bound: BOUNDS[algorithm](params.limit),
        admitted: admissions.length,
        requests,
        unavailable,
        worstIntervalMs: Math.round(Math.max(0, ...admissions.map((a) => a.received - a.sent)) * 10) / 10,
      });
    } finally {
      await Promise.all(gateways.map((g) => g.stop()));
    }
  }
  return { instances: params.instances, figures };
}
