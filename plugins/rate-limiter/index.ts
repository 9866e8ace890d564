import { definePlugin } from '../../src/host/plugin.ts';
import { ALGORITHMS } from './algorithms/index.ts';
import { RateLimiter } from './limiter.ts';
import { RateLimiterOptions } from './options.ts';
import { MemoryStore } from './store/memory.ts';

export { RateLimiter } from './limiter.ts';
export { RateLimiterOptions } from './options.ts';

/** Limits prompt fetches and tool calls per user, tenant and tool. */
export default definePlugin({
  name: 'rate_limiter',
  configSchema: RateLimiterOptions,
  setup({ config, hooks, clock, logger, identity, mode }) {
    const store = new MemoryStore(ALGORITHMS[config.algorithm], config.max_keys);
    const limiter = new RateLimiter({ options: config, store, clock, logger, identity, mode });
    hooks.register('prePromptFetch', (payload) => limiter.onPrompt(payload.context));
    hooks.register('preToolInvoke', (payload) => limiter.onTool(payload.context, payload.tool));
    logger.info(
      { algorithm: config.algorithm, backend: config.backend, by_user: config.by_user?.source, by_tenant: config.by_tenant?.source },
      'rate limiter ready',
    );
    return { teardown: () => store.close() };
  },
});
