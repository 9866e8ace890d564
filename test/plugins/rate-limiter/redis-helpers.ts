import { Redis } from 'ioredis';
import rateLimiterPlugin from '../../../plugins/rate-limiter/index.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import type { Decision } from '../../../plugins/rate-limiter/store/types.ts';
import { MessageBus } from '../../../src/bus/bus.ts';
import { systemClock, type Clock } from '../../../src/clock.ts';
import type { HookHandler } from '../../../src/hooks/runner.ts';
import type { HookContext, HookResult } from '../../../src/hooks/schemas.ts';
import type { PluginContext } from '../../../src/host/plugin.ts';
import { createLogger, IdentityHasher } from '../../../src/logger.ts';
import { CapturedLog } from './helpers.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';

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

let messages = 0;

export async function startPlugin(config: Record<string, unknown>, clock: Clock = systemClock): Promise<RunningPlugin> {
  const log = new CapturedLog();
  const handlers: { prompt?: HookHandler<'prePromptFetch'>; tool?: HookHandler<'preToolInvoke'> } = {};
  const context: PluginContext<RateLimiterOptions> = {
    name: 'rate_limiter',
    config: RateLimiterOptions.parse(config),
    mode: 'enforce',
    logger: createLogger({ destination: log }),
    clock,
    identity: new IdentityHasher('test-salt'),
    bus: new MessageBus(),
    metrics: new MetricsRegistry(),
    services: { provide: () => {} },
    hooks: {
      register(hook, handler) {
        if (hook === 'prePromptFetch') handlers.prompt = handler as HookHandler<'prePromptFetch'>;
        else if (hook === 'preToolInvoke') handlers.tool = handler as HookHandler<'preToolInvoke'>;
      },
    },
  };
  const instance = await rateLimiterPlugin.setup(context);
  const hookContext = (user: string, tenant: string | undefined): HookContext => ({
    message_id: `m-${++messages}`,
    channel: 'http',
    user_id: user,
    ...(tenant === undefined ? {} : { tenant_id: tenant }),
    conversation_id: 'c-1',
  });
  return {
    prompt: async (user, tenant) => handlers.prompt!({ prompt_id: 'p', text: 'hi', context: hookContext(user, tenant) }),
    tool: async (user, tool, tenant) => handlers.tool!({ tool, args: {}, context: hookContext(user, tenant) }),
    log,
    teardown: async () => {
      await instance?.teardown?.();
    },
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
