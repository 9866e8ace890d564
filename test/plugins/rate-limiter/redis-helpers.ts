import { Redis } from 'ioredis';
import type { Decision } from '../../../plugins/rate-limiter/store/types.ts';
import { systemClock, type Clock } from '../../../src/clock.ts';
import type { HookResult } from '../../../src/hooks/schemas.ts';
import type { CapturedLog } from './helpers.ts';
import { startHarness } from './plugin-harness.ts';

/**
 * What a client sees of a decision, in the units the Redis script answers in (whole milliseconds):
 * the memory store's fractional waits are rounded up the way the script rounds them.
 */
export interface DecisionView {
  allowed: boolean;
  retryAfterMs: number;
  results: { remaining: number; retryAfterMs: number; resetMs: number }[];
}

export function view(decision: Decision): DecisionView {
  return {
    allowed: decision.allowed,
    retryAfterMs: Math.ceil(decision.retryAfterMs),
    results: decision.results.map((r) => ({
      remaining: r.remaining,
      retryAfterMs: Math.ceil(r.retryAfterMs),
      resetMs: Math.ceil(r.resetMs),
    })),
  };
}

/** A plain client for looking at what the store wrote (not the limiter's tuned client). */
export function inspector(url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => {});
  return client;
}

/** Every key on a (non-cluster) server, sorted. */
export async function allKeys(client: Redis): Promise<string[]> {
  return (await client.keys('*')).sort();
}

/** The part of a key Redis Cluster hashes: between the first "{" and the next "}", if not empty. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open === -1) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns true; fails after `timeoutMs`. */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 25): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

/** The rate-limiter plugin as the host sets it up: its hooks, its log, and its teardown. */
export interface RunningPlugin {
  prompt(user: string, tenant?: string): Promise<HookResult>;
  tool(user: string, tool: string, tenant?: string): Promise<HookResult>;
  log: CapturedLog;
  teardown(): Promise<void>;
}

export async function startPlugin(config: Record<string, unknown>, clock: Clock = systemClock): Promise<RunningPlugin> {
  const harness = await startHarness(config, clock);
  return {
    prompt: (user, tenant) => harness.prompt({ user, tenant }),
    tool: (user, tool, tenant) => harness.tool(tool, { user, tenant }),
    log: harness.log,
    teardown: () => harness.teardown(),
  };
}

/** `promise`, or a clear failure if it has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
