import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../store/redis.ts';

/** The channel every instance with one key prefix listens on. */
export function invalidationChannel(prefix: string): string {
  return `${prefix}:refusal-cache:invalidate`;
}

export interface InvalidationHandlers {
  /** Another instance (or this one) changed the keys under these hash tags. */
  dropped(tags: readonly string[]): void;
  /** The subscription was (re)established: what was published while it was down is lost. */
  resubscribed(): void;
}

/**
 * Tells every instance sharing a Redis which hash tags' keys changed outside a decision (a refund,
 * an operator's reset), over Redis pub/sub: a second connection in subscriber mode listens, the
 * shared client publishes. Tags announced in the same turn of the event loop go as one message (a
 * JSON array). Delivery is best effort: a message lost while a connection is down is covered by
 * the cache's bound on age (SNAPSHOT_MAX_AGE_MS), and every (re)subscription clears the cache.
 *
 * On a Cluster, PUBLISH reaches the subscribers on every node, so one subscription anywhere hears
 * every instance.
 */
export class InvalidationChannel {
  private pending = new Set<string>();
  private flushing: Promise<void> | undefined;

  private constructor(
    private readonly publisher: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly name: string,
  ) {}

  /** Subscribes on a connection of its own (made from `client`), in the background: the start does not wait for it. */
  static open(client: RedisClient, prefix: string, handlers: InvalidationHandlers): InvalidationChannel {
    const subscriber = subscriberFor(client);
    const channel = new InvalidationChannel(client, subscriber, invalidationChannel(prefix));
    subscriber.on('error', () => {});
    subscriber.on('message', (name: string, message: string) => {
      if (name === channel.name) handlers.dropped(parseTags(message));
    });
    // Each connection (the first, and every reconnection) subscribes; messages sent while it was down
    // are gone, so everything cached may be stale. ioredis would resubscribe by itself, but only to a
    // subscription that once succeeded; subscribing again is harmless.
    subscriber.on('ready', () => {
      handlers.resubscribed();
      subscriber.subscribe(channel.name).catch(() => {});
    });
    return channel;
  }

  /** Whether the subscription is up (for tests and operators; answers do not depend on it). */
  get listening(): boolean {
    return (this.subscriber as Redis).status === 'ready';
  }

  /**
   * Publishes `tag`, with the others announced in this turn; resolves once published or failed
   * (never rejects: a lost announcement only ages out).
   */
  announce(tag: string): Promise<void> {
    this.pending.add(tag);
    this.flushing ??= new Promise<void>((resolve) => {
      setImmediate(() => {
        const tags = [...this.pending];
        this.pending = new Set();
        this.flushing = undefined;
        this.publisher.publish(this.name, JSON.stringify(tags)).then(
          () => resolve(),
          () => resolve(),
        );
      });
    });
    return this.flushing;
  }

  close(): void {
    this.subscriber.disconnect();
  }
}

/**
 * A connection for SUBSCRIBE, like `client` but without the decision path's command timeout (50 ms
 * is for decisions). It connects at once and subscribes on every 'ready'.
 */
function subscriberFor(client: RedisClient): RedisClient {
  if ((client as { isCluster?: boolean }).isCluster) {
    const cluster = client as Cluster;
    return cluster.duplicate(undefined, {
      lazyConnect: false,
      enableOfflineQueue: true,
      redisOptions: { ...cluster.options.redisOptions, commandTimeout: undefined, maxRetriesPerRequest: null },
    });
  }
  return (client as Redis).duplicate({ lazyConnect: false, commandTimeout: undefined, maxRetriesPerRequest: null, enableAutoPipelining: false });
}

/** The tags of one message; anything that is not a JSON array of strings drops nothing. */
function parseTags(message: string): string[] {
  try {
    const value: unknown = JSON.parse(message);
    return Array.isArray(value) ? value.filter((tag): tag is string => typeof tag === 'string') : [];
  } catch {
    return [];
  }
}
