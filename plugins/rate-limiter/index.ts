import { type Clock, errorMessage, definePlugin, type Logger, type MessageBus, type MetricsRegistry } from '../../src/plugin-sdk.ts';
import { ALGORITHMS } from './algorithms/index.ts';
import type { KeyScope } from './keys.ts';
import { RateLimiter } from './limiter.ts';
import { RateLimiterOptions } from './options.ts';
import type { PolicyCheck } from './policy.ts';
import { MemoryStore } from './store/memory.ts';
import { forgetRedis, peekRedis } from './store/redis-admin.ts';
import { CONNECT_TIMEOUT_MS, connectWithin, createRedisClient } from './store/redis-client.ts';
import { RedisStore } from './store/redis.ts';
import { ResilientStore } from './store/resilient.ts';
import { MemoryConcurrencyGate } from './concurrency/memory.ts';
import { RedisConcurrencyGate } from './concurrency/redis.ts';
import type { ConcurrencyGate } from './concurrency/types.ts';
import { ResilientGate } from './resilient-gate.ts';
import type { RateStore, RuleResult } from './store/types.ts';
import { LimiterTelemetry } from './telemetry.ts';
import { LimitsView } from './view.ts';
import { mountLimitsRoutes } from './admin-routes.ts';
import type { BreakerState } from './breaker.ts';

export { RateLimiter } from './limiter.ts';
export { RateLimiterOptions } from './options.ts';

interface Backend {
  store: RateStore;
  /** Concurrency slots, where the state lives (memory, or Redis with the same failure policy). */
  gate: ConcurrencyGate;
  telemetry: LimiterTelemetry;
  /** The operator's reads and resets, on whichever backend holds the state. */
  peek(checks: readonly PolicyCheck[]): Promise<RuleResult[]>;
  forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number>;
  close(): Promise<void>;
}

interface BackendDeps {
  clock: Clock;
  logger: Logger;
  metrics: MetricsRegistry;
  bus: MessageBus;
}

/** The memory store, or Redis behind a circuit breaker with the memory store as its fallback. */
async function openBackend(options: RateLimiterOptions, { clock, logger, metrics, bus }: BackendDeps): Promise<Backend> {
  const memory = new MemoryStore(ALGORITHMS[options.algorithm], options.max_keys, clock);
  const localGate = new MemoryConcurrencyGate({ leaseMs: options.concurrency_lease_ms, clock });
  if (options.backend === 'memory') {
    const telemetry = new LimiterTelemetry(metrics, bus, { keys: () => memory.size });
    return {
      store: memory,
      gate: localGate,
      telemetry,
      peek: async (checks) => memory.peek(checks, clock.now()),
      forget: async (scope, owns) => memory.forget(owns) + (await localGate.forget(scope.tag, owns)),
      close: async () => {
        telemetry.dispose();
        await Promise.all([memory.close(), localGate.close()]);
      },
    };
  }

  const client = createRedisClient({ url: options.redis_url, cluster: options.redis_cluster, timeoutMs: options.redis_timeout_ms });
  let breaker: BreakerState = 'closed';
  let telemetry: LimiterTelemetry | undefined;
  const store = new ResilientStore({
    primary: new RedisStore({ client, algorithm: options.algorithm, prefix: options.redis_key_prefix }),
    fallback: memory,
    policy: options.on_backend_error,
    clock,
    onFailure: (error) => telemetry?.backendFailed(errorMessage(error)),
    onStateChange: (state, previous, lastError) => {
      breaker = state;
      telemetry?.breakerChanged(state, previous);
      if (state === 'open' && previous === 'closed') {
        logger.warn(
          { on_backend_error: options.on_backend_error, err_message: errorMessage(lastError) },
          `redis backend failing; deciding by on_backend_error=${options.on_backend_error} until it answers`,
        );
      } else if (state === 'closed') {
        logger.info('redis backend answering again; decisions are back on redis');
      }
    },
  });
  telemetry = new LimiterTelemetry(metrics, bus, { keys: () => store.size, breaker: () => breaker });
  const gate = new ResilientGate({
    primary: new RedisConcurrencyGate({ client, prefix: options.redis_key_prefix, leaseMs: options.concurrency_lease_ms }),
    fallback: localGate,
    policy: options.on_backend_error,
    onFailure: (error) => telemetry?.backendFailed(errorMessage(error)),
  });
  try {
    await connectWithin(client, CONNECT_TIMEOUT_MS);
  } catch (error) {
    // Start anyway: the breaker decides by the failure policy and probes until Redis answers.
    store.markDown(error);
  }
  const tracked = telemetry;
  return {
    store,
    gate,
    telemetry: tracked,
    peek: (checks) => peekRedis(client, options.algorithm, options.redis_key_prefix, checks),
    forget: async (scope, owns) =>
      (await forgetRedis(client, options.redis_key_prefix, scope.tag, owns)) + memory.forget(owns) + (await gate.forget(scope.tag, owns)),
    close: async () => {
      tracked.dispose();
      await Promise.all([store.close(), gate.close()]);
      client.disconnect();
    },
  };
}

/** Settings that decide where state lives: changing any of them on reload starts a new store. */
function storeSettings(options: RateLimiterOptions): string {
  const { algorithm, backend, max_keys, redis_url, redis_cluster, redis_key_prefix, redis_timeout_ms, on_backend_error, concurrency_lease_ms } =
    options;
  return JSON.stringify({
    algorithm,
    backend,
    max_keys,
    redis_url,
    redis_cluster,
    redis_key_prefix,
    redis_timeout_ms,
    on_backend_error,
    concurrency_lease_ms,
  });
}

/** Limits prompt fetches and tool calls per user, tenant and tool. */
export default definePlugin({
  name: 'rate_limiter',
  configSchema: RateLimiterOptions,
  async setup({ config, hooks, clock, logger, identity, mode, metrics, bus, services, admin }) {
    const deps: BackendDeps = { clock, logger, metrics, bus };
    let current = config;
    let backend = await openBackend(config, deps);
    const limiter = new RateLimiter({
      options: config,
      store: backend.store,
      gate: backend.gate,
      clock,
      logger,
      identity,
      mode,
      telemetry: backend.telemetry,
    });
    hooks.register(
      'prePromptFetch',
      (payload, call) =>
        limiter.onPrompt(payload.context, {
          promptId: payload.prompt_id,
          estimatedTokens: payload.estimated_tokens,
          call,
        }),
      // A call waiting for a concurrency slot is not a stuck plugin.
      { queueMs: () => limiter.queueMs() },
    );
    hooks.register('postPromptFetch', (payload) =>
      limiter.onPromptDone(payload.context, { promptId: payload.prompt_id, outcome: payload.outcome, actualTokens: payload.actual_tokens }),
    );
    hooks.register('preToolInvoke', (payload) => limiter.onTool(payload.context, payload.tool));
    const view = new LimitsView({
      policy: () => limiter.policy,
      peek: (checks) => backend.peek(checks),
      inUse: (keys) => backend.gate.inUse(keys),
      forget: (scope, owns) => backend.forget(scope, owns),
    });
    services.provide('limits', view);
    mountLimitsRoutes(admin, view, logger);
    logger.info(
      {
        algorithm: config.algorithm,
        backend: config.backend,
        on_backend_error: config.backend === 'redis' ? config.on_backend_error : undefined,
        by_user: config.by_user?.rates.map((r) => r.source),
        by_tenant: config.by_tenant?.rates.map((r) => r.source),
      },
      'rate limiter ready',
    );
    return {
      async reconfigure(update) {
        const next = update.config as RateLimiterOptions;
        if (storeSettings(next) === storeSettings(current)) {
          limiter.reconfigure(next, update.mode);
          logger.info('rate limiter reconfigured; every count kept');
        } else {
          const previous = backend;
          previous.telemetry.dispose();
          backend = await openBackend(next, deps);
          limiter.reconfigure(next, update.mode, { store: backend.store, gate: backend.gate, telemetry: backend.telemetry });
          await previous.close();
          logger.warn('rate limiter reconfigured with another algorithm or backend; counts start afresh');
        }
        current = next;
      },
      teardown: () => backend.close(),
    };
  },
});
