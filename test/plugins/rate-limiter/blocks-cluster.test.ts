import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { redisTestsEnabled, startRedisCluster, type RedisCluster } from '../../support/redis.ts';
import { BLOCK_TABLES, redisBlockStore, runBlockTable } from './block-tables.ts';
import { within } from './redis-helpers.ts';

/**
 * Escalating blocks on a 3-master Redis Cluster: each request is its own script call there, its block
 * keys declared with its rule keys (all under one hash tag, so in one slot), and the answers are the
 * tables' as on a single server.
 */
describe.skipIf(!redisTestsEnabled())('escalating blocks on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = createRedisClient({ cluster: cluster.seeds.map((s) => `${s.host}:${s.port}`), timeoutMs: 2_000 }) as Cluster;
    await within(client.connect(), 5_000, 'cluster connect()');
  });
  afterAll(async () => {
    await client?.quit();
    await cluster?.stop();
  });

  it.each(BLOCK_TABLES.map((table, i) => ({ table, i })))('$table.name', async ({ table, i }) => {
    expect(await runBlockTable(redisBlockStore(client, 'sliding_window', `k${i}`), table, 1_800_000_000_000)).toEqual(table.expected);
  });
});
