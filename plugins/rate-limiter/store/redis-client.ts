import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';

/** How long the first connection may take before the gateway starts without Redis (the breaker probes on). */
export const CONNECT_TIMEOUT_MS = 2_000;

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
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
  };
  const client = options.cluster
    ? new Cluster(options.cluster.map(seedNode), {
        lazyConnect: true,
        enableOfflineQueue: false,
        // The ready check (CLUSTER INFO) goes to a random node, which may still be in its handshake;
        // without an offline queue it then fails, ioredis reconnects, and the promise connect()
        // returned never settles (plugin setup would hang). Commands fail fast either way.
        enableReadyCheck: false,
        // Off on a cluster: ioredis's cluster auto-pipeline cannot run commands added with
        // defineCommand ("pipeline[functionName] is not a function"); each decision is sent on its own.
        enableAutoPipelining: false,
        clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
        redisOptions: { ...common, lazyConnect: false },
      })
    : new Redis(options.url!, common);
  // Failures surface through commands (and the breaker's log); without a listener ioredis would
  // print every reconnection error to the console.
  client.on('error', () => {});
  return client;
}

/**
 * The first connection, never holding the caller past `deadlineMs`: resolves once the client is ready,
 * rejects when the first attempt fails or the deadline passes; the client goes on reconnecting in the
 * background either way. Readiness is also taken from the 'ready' event, because ioredis's
 * Cluster.connect() stays pending for ever when its first ready check fails (a node not connected
 * yet) and the cluster then reconnects, and gets ready, by itself.
 */
export function connectWithin(client: Redis | Cluster, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (error?: unknown): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onReady = (): void => finish();
    const timer = setTimeout(() => finish(new Error(`redis not ready within ${deadlineMs} ms`)), deadlineMs);
    client.once('ready', onReady);
    client.connect().then(
      () => finish(),
      (error: unknown) => finish(error ?? new Error('redis connection failed')),
    );
  });
}
