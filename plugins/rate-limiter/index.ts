import type { Clock } from '../../src/clock.ts';
import { errorMessage } from '../../src/errors.ts';
import { definePlugin } from '../../src/host/plugin.ts';
import type { Logger } from '../../src/logger.ts';
import { ALGORITHMS } from './algorithms/index.ts';
import { RateLimiter } from './limiter.ts';
import { RateLimiterOptions } from './options.ts';
import { MemoryStore } from './store/memory.ts';
import { CONNECT_TIMEOUT_MS, connectWithin, createRedisClient } from './store/redis-client.ts';
import { RedisStore } from './store/redis.ts';
import { ResilientStore } from './store/resilient.ts';
import type { RateStore } from './store/types.ts';

export { RateLimiter } from './limiter.ts';
export { RateLimiterOptions } from './options.ts';

interface Backend {
  store: RateStore;
  close(): Promise<void>;
}

/** The memory store, or Redis behind a circuit breaker with the memory store as its fallback. */
async function openBackend(options: RateLimiterOptions, clock: Clock, logger: Logger): Promise<Backend> {
  const memory = new MemoryStore(ALGORITHMS[options.algorithm], options.max_keys);
  if (options.backend === 'memory') return { store: memory, close: () => memory.close() };

  const client = createRedisClient({ url: options.redis_url, cluster: options.redis_cluster, timeoutMs: options.redis_timeout_ms });
  const store = new ResilientStore({
    primary: new RedisStore({ client, algorithm: options.algorithm, prefix: options.redis_key_prefix }),
    fallback: memory,
    policy: options.on_backend_error,
    clock,
    onStateChange: (state, previous, lastError) => {
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
  try {
    await connectWithin(client, CONNECT_TIMEOUT_MS);
  } catch (error) {
    // Start anyway: the breaker decides by the failure policy and probes until Redis answers.
    store.markDown(error);
  }
  return {
    store,
    close: async () => {
      await store.close();
      client.disconnect();
    },
  };
}

/** Limits prompt fetches and tool calls per user, tenant and tool. */
export default definePlugin({
  name: 'rate_limiter',
  configSchema: RateLimiterOptions,
  async setup({ config, hooks, clock, logger, identity, mode }) {
    const backend = await openBackend(config, clock, logger);
    const limiter = new RateLimiter({ options: config, store: backend.store, clock, logger, identity, mode });
    hooks.register('prePromptFetch', (payload) => limiter.onPrompt(payload.context));
    hooks.register('preToolInvoke', (payload) => limiter.onTool(payload.context, payload.tool));
    logger.info(
      {
        algorithm: config.algorithm,
        backend: config.backend,
        on_backend_error: config.backend === 'redis' ? config.on_backend_error : undefined,
        by_user: config.by_user?.source,
        by_tenant: config.by_tenant?.source,
      },
      'rate limiter ready',
    );
    return { teardown: () => backend.close() };
  },
});
