import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';

export interface RedisConnectionOptions {
  url?: string;
  cluster?: readonly string[];
  /** A command not answered by then fails (and counts against the circuit breaker). */
  timeoutMs: number;
}

/** "host:port" or "redis://host:port" → a cluster seed. */
function seedNode(seed: string): ClusterNode {
  if (/^rediss?:\/\//.test(seed)) return seed;
  const at = seed.lastIndexOf(':');
  return { host: seed.slice(0, at), port: Number(seed.slice(at + 1)) };
}

/**
 * A client tuned for a limiter on the request path: commands fail fast instead of queueing while
 * Redis is away (the breaker then decides without it), time out after `timeoutMs`, and are
 * auto-pipelined. Reconnection goes on in the background.
 */
export function createRedisClient(options: RedisConnectionOptions): Redis | Cluster {
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    commandTimeout: options.timeoutMs,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
  };
  const client = options.cluster
    ? new Cluster(options.cluster.map(seedNode), {
        lazyConnect: true,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
        redisOptions: { ...common, lazyConnect: false },
      })
    : new Redis(options.url!, common);
  // Failures surface through commands (and the breaker's log); without a listener ioredis would
  // print every reconnection error to the console.
  client.on('error', () => {});
  return client;
}
