import type { AlgorithmName } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { tagOf } from '../../../plugins/rate-limiter/backend/cached-refusals.ts';
import { RefusalCache, type AdjustingBackend } from '../../../plugins/rate-limiter/backend/refusal-cache.ts';
import { forgetRedis, peekRedis } from '../../../plugins/rate-limiter/store/redis-admin.ts';
import { RedisStore, type RedisClient } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Decision, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';

/**
 * The Redis store on the caller's time as a Backend (what the refusal cache stands in front of in
 * these tests), counting the decisions that reached Redis.
 */
export interface CountingBackend extends AdjustingBackend {
  /** Decisions sent to Redis. */
  redisDecisions: number;
}

export function callerTimeBackend(client: RedisClient, algorithm: AlgorithmName, prefix: string): CountingBackend {
  const store = new RedisStore({ client, algorithm, prefix, timeSource: 'caller' });
  const backend: CountingBackend = {
    redisDecisions: 0,
    decide(checks, now, next) {
      backend.redisDecisions++;
      return store.decide(checks, now).then(next);
    },
    acquire() {
      throw new Error('no concurrency slots in these tests');
    },
    adjust: (decision, checks, deltas, now) => store.adjust(decision, checks, deltas, now),
    peek: async (checks) => ({ results: await peekRedis(client, algorithm, prefix, checks), local: false }),
    inUse: async (keys) => keys.map(() => 0),
    forget: (scope, owns) => forgetRedis(client, prefix, scope.tag, owns),
    keys: 0,
    blocks: 0,
    breaker: 'closed',
    close: async () => {},
  };
  return backend;
}

/**
 * Which keys other subjects charge, by the keys' layout (keys.ts): a tenant's key is its bare hash
 * tag (plus a rule's suffix); a user's and a tool's carry what comes after it. The shared tables'
 * requests are built so (each user's checks always the same), and their plain Rules carry no names.
 */
export function tenantKeysShared(check: RuleCheck): boolean {
  const rest = check.key.slice(tagOf(check.key).length);
  return rest === '' || rest.startsWith('|');
}

export interface CachedStore {
  cache: RefusalCache;
  inner: CountingBackend;
  /** Decides through the cache, then lets any state read it started land (so the next request sees it). */
  decide(checks: readonly RuleCheck[], now: number): Promise<Decision>;
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): Promise<void>;
  /** Answers given from memory so far. */
  readonly answered: number;
}

/** The refusal cache over the caller-time store; pub/sub off unless asked (one instance needs none). */
export function cachedStore(
  client: RedisClient,
  algorithm: AlgorithmName,
  prefix: string,
  options: { invalidations?: boolean; clock?: Clock; chargedByOthers?: (check: RuleCheck) => boolean; maxTags?: number } = {},
): CachedStore {
  const inner = callerTimeBackend(client, algorithm, prefix);
  let answered = 0;
  const cache = new RefusalCache({
    inner,
    client,
    algorithm,
    prefix,
    maxTags: options.maxTags ?? 10_000,
    clock: options.clock ?? systemClock,
    chargedByOthers: options.chargedByOthers ?? tenantKeysShared,
    timeSource: 'caller',
    invalidations: options.invalidations ?? false,
    answered: () => answered++,
  });
  return {
    cache,
    inner,
    async decide(checks, now) {
      const decision = await cache.decide(checks, now, (d) => d);
      await cache.settled();
      return decision;
    },
    async adjust(decision, checks, deltas, now) {
      cache.adjust(decision, checks, deltas, now);
      await cache.settled();
    },
    get answered() {
      return answered;
    },
  };
}
