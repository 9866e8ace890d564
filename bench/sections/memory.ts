/**
 * 5. Memory per tracked user: V8 heap (plus array buffers) held per key after 1,000,000 distinct users
 * have each made one request, per algorithm, measured after full garbage collections (the worker runs
 * with --expose-gc). Keys are the plugin's own (`{http:user-0000001}u:`, 21 characters). The sliding
 * window keeps the last N admission times per key, so it is also measured with every ring full (N
 * requests per user). RateLimiterMemory (one timer per key) is measured the same way for comparison.
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ALGORITHMS } from '../../plugins/rate-limiter/algorithms/index.ts';
import { Policy } from '../../plugins/rate-limiter/policy.ts';
import { MemoryStore } from '../../plugins/rate-limiter/store/memory.ts';
import { ALGORITHM_NAMES, USER_RATE, limiterOptions, userId, type AlgorithmName } from '../lib/fixtures.ts';
import { collectGarbage, round } from '../lib/measure.ts';

export interface MemoryParams {
  users: number;
  fullRingUsers: number;
  rlfUsers: number;
}

export interface MemoryFigure {
  name: string;
  keys: number;
  requestsPerKey: number;
  bytesPerKey: number;
  totalMb: number;
}

export interface MemoryResult {
  keyLength: number;
  figures: MemoryFigure[];
}

function heapBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

async function measure(name: string, requestsPerKey: number, fill: () => { size: number; keep: unknown }): Promise<MemoryFigure> {
  collectGarbage();
  const before = heapBytes();
  const { size, keep } = fill();
  collectGarbage();
  const held = heapBytes() - before;
  // Keep the structure alive until after the measurement.
  (globalThis as { benchKeep?: unknown }).benchKeep = keep;
  (globalThis as { benchKeep?: unknown }).benchKeep = undefined;
  return { name, keys: size, requestsPerKey, bytesPerKey: round(held / size, 1), totalMb: round(held / 2 ** 20, 1) };
}

function fillStore(algorithm: AlgorithmName, users: number, requests: number): { size: number; keep: unknown } {
  const policy = new Policy(limiterOptions(algorithm, 1));
  const store = new MemoryStore(ALGORITHMS[algorithm], users);
  const now = Date.now();
  for (let i = 0; i < users; i++) {
    const checks = policy.forPrompt(policy.subject('http', userId(i), undefined));
    for (let r = 0; r < requests; r++) store.decide(checks, now + r);
  }
  return { size: store.size, keep: store };
}

export async function runMemory(params: MemoryParams, log: (line: string) => void): Promise<MemoryResult> {
  if (!(globalThis as { gc?: unknown }).gc) throw new Error('the memory section needs node --expose-gc');
  const figures: MemoryFigure[] = [];
  for (const algorithm of ALGORITHM_NAMES) {
    log(`memory: ${algorithm}, ${params.users.toLocaleString('en')} users`);
    figures.push(await measure(algorithm, 1, () => fillStore(algorithm, params.users, 1)));
  }
  log(`memory: sliding_window with full rings, ${params.fullRingUsers.toLocaleString('en')} users`);
  figures.push(await measure('sliding_window (full ring)', USER_RATE.points, () => fillStore('sliding_window', params.fullRingUsers, USER_RATE.points)));

  log(`memory: RateLimiterMemory, ${params.rlfUsers.toLocaleString('en')} users`);
  figures.push(
    await measure('RateLimiterMemory', 1, () => {
      // Its timers are unref'd: they do not keep the worker alive, and it exits when done.
      const limiter = new RateLimiterMemory({ points: USER_RATE.points, duration: USER_RATE.seconds });
      const policy = new Policy(limiterOptions('fixed_window', 1));
      for (let i = 0; i < params.rlfUsers; i++) void limiter.consume(policy.forPrompt(policy.subject('http', userId(i), undefined))[0]!.key);
      return { size: params.rlfUsers, keep: limiter };
    }),
  );
  const policy = new Policy(limiterOptions('token_bucket', 1));
  const keyLength = policy.forPrompt(policy.subject('http', userId(0), undefined))[0]!.key.length;
  return { keyLength, figures };
}
