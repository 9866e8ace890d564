import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, type AlgorithmName } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { BLOCK_TABLES, cachedBlockStore, memoryBlockStore, redisBlockStore, runBlockTable, type BlockStep, type BlockTable } from './block-tables.ts';
import { inspector } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

/** A small time and a real epoch time (2027), both on a boundary of the 10 s windows. */
const ORIGINS = [1_000_000, 1_800_000_000_000];
const cases = BLOCK_TABLES.flatMap((table) => ORIGINS.flatMap((t0) => ALGORITHM_NAMES.map((algorithm) => ({ table, t0, algorithm }))));

describe('escalating blocks: the memory store', () => {
  it.each(cases)('$table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runBlockTable(memoryBlockStore(algorithm), table, t0)).toEqual(table.expected);
  });
});

/** Random traffic of three members of one tenant, with user and tenant blocks, peeks and resets. */
const randomTable = fc
  .array(
    fc.record({
      gap: fc.constantFrom(0, 1, 700, 3_000, 10_000, 61_000, 700_000, 3_700_000, 86_400_000),
      who: fc.constantFrom('alice', 'bob', 'carol'),
      what: fc.constantFrom('send', 'send', 'send', 'send', 'peek', 'reset'),
    }),
    { minLength: 5, maxLength: 60 },
  )
  .map((events): BlockTable => {
    let t = 0;
    const steps = events.map(({ gap, who, what }): BlockStep => {
      t += gap;
      return what === 'send' ? { t, send: who } : what === 'peek' ? { t, peek: who } : { t, reset: who };
    });
    return {
      name: 'random',
      config: { by_user: '2/10s', by_tenant: '4/10s', block: { after: 1, durations: ['1m', '10m', '1h'], decay_after: '1d', subjects: ['user', 'tenant'] } },
      steps,
      expected: [],
    };
  });

describe.skipIf(!enabled)('escalating blocks: Redis answers exactly as memory', () => {
  let server: RedisProcess;
  let client: Redis;
  let admin: Redis;
  let prefixes = 0;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
    client = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await client.connect();
  });
  afterAll(async () => {
    await client?.quit();
    await admin?.quit();
    await server?.stop();
  });

  const redis = (algorithm: AlgorithmName) => {
    const prefix = `b${++prefixes}`;
    return { store: redisBlockStore(client, algorithm, prefix), prefix };
  };

  it.each(cases)('$table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runBlockTable(redis(algorithm).store, table, t0)).toEqual(table.expected);
  });

  it.each(cases)('with the refusal cache in front: $table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runBlockTable(cachedBlockStore(client, algorithm, `bc${++prefixes}`), table, t0)).toEqual(table.expected);
  });

  it.each(ALGORITHM_NAMES)('%s: random traffic of a tenant gets the same answers from both stores', async (algorithm) => {
    await fc.assert(
      fc.asyncProperty(randomTable, async (table) => {
        const t0 = 1_800_000_000_000;
        const fromMemory = await runBlockTable(memoryBlockStore(algorithm), table, t0);
        expect(await runBlockTable(redis(algorithm).store, table, t0)).toEqual(fromMemory);
        // With the refusal cache in front too (refusal-cache.test.ts shows it answering blocks in force).
        expect(await runBlockTable(cachedBlockStore(client, algorithm, `bc${++prefixes}`), table, t0)).toEqual(fromMemory);
      }),
      { numRuns: 40 },
    );
  });

  it('keeps a block record as a hash beside the user’s rate keys, under their hash tag, until it says nothing', async () => {
    const { store, prefix } = redis('sliding_window');
    const t0 = Date.now();
    const lines = await runBlockTable(store, BLOCK_TABLES[3]!, t0);
    expect(lines).toEqual(BLOCK_TABLES[3]!.expected);
    const key = `${prefix}:{http:alice}u:|block`;
    expect(await admin.type(key)).toBe('hash');
    expect(await admin.hgetall(key)).toMatchObject({ n: '0', l: '1' });
    // The last block (30 s) ends about 30 s from its start, and level 1 decays a day after: the record
    // lives that long (on Redis's clock, which this test's times follow).
    const ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(86_400_000);
    expect(ttl).toBeLessThanOrEqual(86_400_000 + 60_000);
    // A key of another type where a block record should be fails that request alone, with its error.
    await admin.set(`${prefix}:{http:mallory}u:|block`, 'not a hash');
    const { store: again } = { store };
    const table: BlockTable = { name: 'wrong type', config: BLOCK_TABLES[3]!.config, steps: [{ t: 0, send: 'mallory' }], expected: [] };
    await expect(runBlockTable(again, table, t0)).rejects.toThrow(/WRONGTYPE/);
    expect(await admin.exists(`${prefix}:{http:mallory}u:|10000`)).toBe(0);
  });
});
