import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { SLOTS_PER_WINDOW, slotEnd } from '../../../plugins/rate-limiter/algorithms/sliding-log.ts';
import { ALGORITHM_NAMES, type AlgorithmName, type Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { decodeTokenLog, TOKEN_SLOT_BYTES } from '../../../plugins/rate-limiter/store/redis-admin.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Decision, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { EXPECTED, TABLES } from './cost-table-data.ts';
import { cachedRedisBackend, memoryBackend, redisBackend, REQUESTS, runTable, TOKENS, type Backend } from './cost-tables.ts';
import { inspector, view } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

/** A small time and a real epoch time (2027), both on a boundary of the 10 s windows. */
const ORIGINS = [1_000_000, 1_800_000_000_000];
const TOKEN_KEY = '{http:alice}u:|tok';
const REQUEST_KEY = '{http:alice}u:';

const UNITS = [
  { unit: 'tokens', rule: TOKENS, key: TOKEN_KEY },
  { unit: 'requests', rule: REQUESTS, key: REQUEST_KEY },
] as const;

const cases = TABLES.flatMap((table) => ORIGINS.flatMap((t0) => ALGORITHM_NAMES.map((algorithm) => ({ table, t0, algorithm }))));

describe('cost and adjustment tables: the memory store', () => {
  it.each(cases)('$table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runTable(memoryBackend(algorithm), table, t0)).toEqual(EXPECTED[table.name]![algorithm]);
  });
});

describe('MemoryStore: a key evicted for room', () => {
  it.each(ALGORITHM_NAMES)('%s: a refund of an evicted key does nothing; a later charge is charged now', (algorithm) => {
    const store = new MemoryStore(ALGORITHMS[algorithm], 1);
    const alice: RuleCheck[] = [{ key: 'alice', rule: TOKENS, cost: 5 }];
    const bob: RuleCheck[] = [{ key: 'bob', rule: TOKENS, cost: 3 }];
    const first = store.decide(alice, 0);
    expect(store.decide(bob, 0).allowed).toBe(true);
    // Alice was evicted to make room for Bob.
    expect(store.evictedLive).toBe(1);
    expect(store.peek(alice, 0)[0]!.remaining).toBe(10);
    store.adjust(first, alice, [-5], 100);
    expect(store.size).toBe(1);
    expect(store.peek(bob, 100)[0]!.remaining).toBe(7);
    // Spent more than estimated: the 2 extra tokens are charged to Alice now (evicting Bob).
    store.adjust(first, alice, [2], 200);
    expect(store.peek(alice, 200)[0]!.remaining).toBe(8);
  });
});

describe.skipIf(!enabled)('cost and adjustment tables: Redis answers exactly as memory', () => {
  let server: RedisProcess;
  let admin: Redis;
  let client: Redis;
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

  const redis = (algorithm: AlgorithmName, options: { serverTime?: boolean } = {}) => {
    const prefix = `c${++prefixes}`;
    if (!options.serverTime) return { backend: redisBackend(client, admin, algorithm, prefix), prefix };
    return { store: new RedisStore({ client, algorithm, prefix }), prefix };
  };

  it.each(cases)('$table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runTable(redis(algorithm).backend!, table, t0)).toEqual(EXPECTED[table.name]![algorithm]);
  });

  it.each(cases)('with the refusal cache in front: $table.name, from t=$t0, $algorithm', async ({ table, t0, algorithm }) => {
    expect(await runTable(cachedRedisBackend(client, algorithm, `cc${++prefixes}`), table, t0)).toEqual(EXPECTED[table.name]![algorithm]);
  });

  describe('a refunded request leaves the key exactly as if it had never been charged', () => {
    const refundCases = ALGORITHM_NAMES.flatMap((algorithm) =>
      UNITS.flatMap(({ unit, rule }) =>
        (['memory', 'redis'] as const).flatMap((backend) => [0, 1000].map((later) => ({ algorithm, unit, rule, backend, later }))),
      ),
    );

    it.each(refundCases)('$algorithm, $unit rule, $backend, refunded $later ms later', async ({ algorithm, rule, backend: which, later }) => {
      const backend: Backend = which === 'memory' ? memoryBackend(algorithm) : redis(algorithm).backend!;
      const t0 = 1_800_000_000_000;
      const costs = rule.unit === 'tokens' ? [6, 2, 2] : [1, 1, 1];
      // Two keys with the same history; `charged` also takes a request that is refunded.
      const control: RuleCheck = { key: '{t:acme}control', rule };
      const charged: RuleCheck = { key: '{t:acme}charged', rule };
      const both = async (now: number, cost: number) => {
        const a = await backend.decide([{ ...control, cost }], now);
        const b = await backend.decide([{ ...charged, cost }], now);
        return [view(a), view(b)];
      };
      await both(t0, costs[0]!);
      await both(t0 + 2000, costs[1]!);
      const checks = [{ ...charged, cost: costs[2]! }];
      const decision = await backend.decide(checks, t0 + 4000);
      expect(decision.allowed).toBe(true);
      const [before] = await backend.peek([control], t0 + 4000);
      await backend.adjust(decision, checks, [-costs[2]!], t0 + 4000 + later);
      if (later === 0) expect((await backend.peek([charged], t0 + 4000))[0]).toEqual(before);
      for (const at of [4000 + later, 5000, 9000, 10_500, 12_500, 30_000]) {
        const [a, b] = [await backend.peek([control], t0 + at), await backend.peek([charged], t0 + at)];
        expect(b, `peek at +${at}`).toEqual(a);
      }
      // And what follows is decided the same on both keys: a burst until refused, then the rest.
      for (const at of [5000, 5000, 5000, 5000, 5000, 5000, 11_000, 11_000, 13_000]) {
        const [a, b] = await both(t0 + at, rule.unit === 'tokens' ? 2 : 1);
        expect(b, `request at +${at}`).toEqual(a);
      }
    });

    it.each(ALGORITHM_NAMES)('%s: in Redis, a refund restores what is stored (tokens and requests)', async (algorithm) => {
      const { backend, prefix } = redis(algorithm);
      const t0 = 1_800_000_000_000;
      for (const { rule } of UNITS) {
        const control: RuleCheck = { key: `{t:x}c${rule.unit}`, rule };
        const charged: RuleCheck = { key: `{t:x}r${rule.unit}`, rule };
        const cost = rule.unit === 'tokens' ? 3 : 1;
        for (const check of [control, charged]) await backend!.decide([{ ...check, cost }], t0);
        const checks = [{ ...charged, cost }];
        const decision = await backend!.decide(checks, t0 + 1000);
        await backend!.adjust(decision, checks, [-cost], t0 + 1000);
        const read = async (key: string) => {
          const type = await admin.type(key);
          if (type === 'list') return admin.lrange(key, 0, -1);
          if (type === 'hash') return admin.hgetall(key);
          // A TAT (compared within float rounding), or the sliding log's text.
          return algorithm === 'token_bucket' ? Number(await admin.get(key)) : admin.get(key);
        };
        const [a, b] = [await read(`${prefix}:${control.key}`), await read(`${prefix}:${charged.key}`)];
        if (typeof a === 'number') expect(b as number).toBeCloseTo(a, 6);
        else expect(b).toEqual(a);
      }
    });
  });

  describe('a cost above the limit is refused and charges nothing', () => {
    it.each(ALGORITHM_NAMES)('%s: memory and Redis (server time)', async (algorithm) => {
      const { store, prefix } = redis(algorithm, { serverTime: true });
      const memory = new MemoryStore(ALGORITHMS[algorithm], 100);
      const big: RuleCheck[] = [
        { key: REQUEST_KEY, rule: REQUESTS },
        { key: TOKEN_KEY, rule: TOKENS, cost: 11 },
      ];
      const now = Date.now();
      for (const decision of [memory.decide(big, now), await store!.decide(big, now)]) {
        expect(decision.allowed).toBe(false);
        expect(decision.retryAfterMs).toBe(TOKENS.windowMs);
        expect(decision.results[1]).toEqual({ retryAfterMs: 10_000, remaining: 10, resetMs: 0, tooLarge: true });
        // The requests rule was not charged either, and knows nothing of sizes.
        expect(decision.results[0]).toEqual({ retryAfterMs: 0, remaining: 3, resetMs: 0 });
      }
      // Nothing was created.
      expect(memory.size).toBe(0);
      expect(await admin.exists(`${prefix}:${REQUEST_KEY}`, `${prefix}:${TOKEN_KEY}`)).toBe(0);

      // A key with state: left byte for byte as it was.
      const some: RuleCheck[] = [{ key: TOKEN_KEY, rule: TOKENS, cost: 4 }];
      expect((await store!.decide(some, now)).allowed).toBe(true);
      const dump = await admin.dumpBuffer(`${prefix}:${TOKEN_KEY}`);
      const refused = await store!.decide([{ key: TOKEN_KEY, rule: TOKENS, cost: 50 }], now);
      expect(refused.results[0]).toMatchObject({ tooLarge: true, remaining: 6 });
      expect(await admin.dumpBuffer(`${prefix}:${TOKEN_KEY}`)).toEqual(dump);
    });

    it('a requests rule ignores the cost it is given (it counts requests)', async () => {
      for (const algorithm of ALGORITHM_NAMES) {
        const { store } = redis(algorithm, { serverTime: true });
        const memory = new MemoryStore(ALGORITHMS[algorithm], 100);
        const checks: RuleCheck[] = [{ key: REQUEST_KEY, rule: REQUESTS, cost: 50 }];
        for (const decision of [memory.decide(checks, 0), await store!.decide(checks, 0)]) {
          expect(decision.allowed).toBe(true);
          expect(decision.results[0]!.remaining).toBe(2);
        }
      }
    });

    it('a cost that is not a positive integer is an error, and charges nothing', async () => {
      const { store, prefix } = redis('sliding_window', { serverTime: true });
      const memory = new MemoryStore(ALGORITHMS.sliding_window, 100);
      for (const cost of [0, -1, 1.5, Number.NaN]) {
        const checks: RuleCheck[] = [{ key: TOKEN_KEY, rule: TOKENS, cost }];
        expect(() => memory.decide(checks, 0)).toThrow(RangeError);
        await expect(store!.decide(checks, 0)).rejects.toThrow(RangeError);
      }
      expect(memory.size).toBe(0);
      expect(await admin.exists(`${prefix}:${TOKEN_KEY}`)).toBe(0);
    });
  });

  describe('Redis keys and times', () => {
    it.each(ALGORITHM_NAMES)('%s: on server time, the decision carries the exact time it charged at, and a refund finds it', async (algorithm) => {
      const { store } = redis(algorithm, { serverTime: true });
      for (const { rule, key } of UNITS) {
        const checks: RuleCheck[] = [{ key, rule, cost: rule.unit === 'tokens' ? 4 : 1 }];
        const before = Date.now();
        const decision = await store!.decide(checks, 0);
        // Redis TIME, in ms with its microseconds: close to this machine's clock, not the caller's 0.
        expect(typeof decision.charge).toBe('number');
        expect(Math.abs((decision.charge as number) - before)).toBeLessThan(2_000);
        await store!.adjust(decision, checks, [rule.unit === 'tokens' ? -4 : -1]);
        const after = await store!.decide(checks, 0);
        expect(after.results[0]!.remaining).toBe(rule.limit - (rule.unit === 'tokens' ? 4 : 1));
      }
    });

    it('the sliding log lives until its newest slot leaves the window, also after a refund of the newest', async () => {
      const { backend, prefix } = redis('sliding_window');
      const t0 = 1_800_000_000_000;
      const key = `${prefix}:${TOKEN_KEY}`;
      const first = [{ key: TOKEN_KEY, rule: TOKENS, cost: 2 }];
      const second = [{ key: TOKEN_KEY, rule: TOKENS, cost: 3 }];
      await backend!.decide(first, t0);
      const newest = await backend!.decide(second, t0 + 4000);
      const ttl = await admin.pttl(key);
      expect(ttl).toBeGreaterThan(9_000);
      expect(ttl).toBeLessThanOrEqual(10_000);
      const slots = async () => decodeTokenLog((await admin.getBuffer(key))!);
      expect(await slots()).toEqual([t0, 2, t0 + 4000, 3]);
      // The newest slot refunded at +5 s: the key now lives until +10 s (the first slot's end).
      await backend!.adjust(newest, second, [-3], t0 + 5000);
      expect(await slots()).toEqual([t0, 2]);
      const after = await admin.pttl(key);
      expect(after).toBeGreaterThan(4_000);
      expect(after).toBeLessThanOrEqual(5_000);
    });

    it.each(ALGORITHM_NAMES)('%s: a full refund of the only charge removes the key', async (algorithm) => {
      const { backend, prefix } = redis(algorithm);
      for (const { rule, key } of UNITS) {
        const checks = [{ key, rule, cost: 3 }];
        const decision = await backend!.decide(checks, 1_000_000);
        expect(await admin.exists(`${prefix}:${key}`)).toBe(1);
        await backend!.adjust(decision, checks, [rule.unit === 'tokens' ? -3 : -1], 1_000_500);
        expect(await admin.exists(`${prefix}:${key}`)).toBe(0);
      }
    });

    it.each(ALGORITHM_NAMES)('%s: a debt keeps the key for as long as it matters, never past its window', async (algorithm) => {
      const { backend, prefix } = redis(algorithm);
      const t0 = 1_000_000;
      const checks = [{ key: TOKEN_KEY, rule: TOKENS, cost: 2 }];
      const decision = await backend!.decide(checks, t0 + 1000);
      await backend!.adjust(decision, checks, [15], t0 + 2000);
      const ttl = await admin.pttl(`${prefix}:${TOKEN_KEY}`);
      // Sliding: the entry at +1 s leaves at +11 s; fixed: the window ends at +10 s; GCRA: 17 tokens
      // of 1 s each from +1 s, so the TAT is at +18 s.
      const expected = { sliding_window: 9_000, fixed_window: 9_000, token_bucket: 16_000 }[algorithm];
      expect(ttl).toBeGreaterThan(expected - 1_000);
      expect(ttl).toBeLessThanOrEqual(expected);
    });

    it('adjusting a key of the wrong type rejects (never throws) and leaves it alone', async () => {
      const { store, prefix } = redis('token_bucket', { serverTime: true });
      const checks: RuleCheck[] = [{ key: TOKEN_KEY, rule: TOKENS, cost: 2 }];
      const decision = await store!.decide(checks, 0);
      await admin.del(`${prefix}:${TOKEN_KEY}`);
      await admin.hset(`${prefix}:${TOKEN_KEY}`, 'x', '1');
      const pending = store!.adjust(decision, checks, [3]);
      expect(pending).toBeInstanceOf(Promise);
      await expect(pending).rejects.toThrow(/WRONGTYPE/);
      expect(await admin.hgetall(`${prefix}:${TOKEN_KEY}`)).toEqual({ x: '1' });
    });
  });

  describe('sliding window, tokens rule: the work of a decision is bounded, whatever the budget', () => {
    it('100,000 one-token charges in one day window hold 45 slots of 16 bytes, in Redis as in memory', async () => {
      const { backend, prefix } = redis('sliding_window');
      const memory = memoryBackend('sliding_window');
      const daily: Rule = { limit: 1_000_000, windowMs: 86_400_000, unit: 'tokens' };
      const checks: RuleCheck[] = [{ key: TOKEN_KEY, rule: daily, cost: 1 }];
      const key = `${prefix}:${TOKEN_KEY}`;
      const t0 = 1_800_000_000_000;
      let most = 0;
      let admitted = 0;
      // One charge every 864 ms, 100,000 over one window; asked 500 at a time, as a busy gateway would.
      for (let from = 0; from < 100_000; from += 500) {
        const times = Array.from({ length: 500 }, (_, i) => t0 + (from + i) * 864);
        const decisions = await Promise.all(times.map((t) => backend!.decide(checks, t)));
        for (const t of times) await memory.decide(checks, t);
        admitted += decisions.filter((d) => d.allowed).length;
        most = Math.max(most, await admin.strlen(key));
      }
      expect(admitted).toBe(100_000);
      // Slots of 2,000 s: 43.2 to a day, so 45 with the first and the last partly inside.
      expect(await admin.strlen(key)).toBe(45 * TOKEN_SLOT_BYTES);
      expect(most).toBe(45 * TOKEN_SLOT_BYTES);
      expect(most).toBeLessThanOrEqual((SLOTS_PER_WINDOW + 1) * TOKEN_SLOT_BYTES);
      const log = decodeTokenLog((await admin.getBuffer(key))!);
      expect(log.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0)).toBe(100_000);
      const last = t0 + 99_999 * 864;
      const newestSlot = t0 + 44 * 2_000_000;
      const [fromRedis, fromMemory] = [await backend!.peek(checks, last), await memory.peek(checks, last)];
      expect(fromRedis).toEqual([{ retryAfterMs: 0, remaining: 900_000, resetMs: newestSlot + daily.windowMs - last }]);
      expect(fromMemory.map((r) => ({ ...r, resetMs: Math.ceil(r.resetMs) }))).toEqual(fromRedis);
    });
  });

  describe('sliding window, tokens rule: random arrivals, costs and refunds', () => {
    interface Op {
      gap: number;
      /** Milliseconds after the whole second (charges fall inside slots, not only on their ends). */
      offset: number;
      /** A request of this cost, or (when `adjust` is set) a refund or smaller commit of an earlier one. */
      cost: number;
      adjust: number | undefined;
      /** The share of the charge kept by an adjustment (0: a full refund). */
      keep: number;
    }
    const scenario = fc
      .record({ limit: fc.integer({ min: 1, max: 30 }), windowMs: fc.constantFrom(10_000, 60_000) })
      .chain((rule) =>
        fc.record({
          rule: fc.constant<Rule>({ ...rule, unit: 'tokens' }),
          // Epoch times too, where doubles resolve only ~0.0002 ms.
          start: fc.oneof(fc.constant(1_000_000), fc.constant(1_800_000_000_000)),
          ops: fc.array(
            fc.record({
              // Whole seconds apart, and at most 100 ms past one: slots (200 ms or 1 s) end on whole
              // fifths of a second, so no key in Redis is ever within 100 ms of its TTL while it still
              // matters (caller time is logical; TTLs run on the real clock).
              gap: fc
                .oneof(fc.constant(0), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: (2 * rule.windowMs) / 1000 }), fc.constant(rule.windowMs / 1000))
                .map((s) => s * 1000),
              offset: fc.constantFrom(0, 0, 1, 37, 99.75),
              cost: fc.oneof(fc.integer({ min: 1, max: Math.max(1, Math.ceil(rule.limit / 3)) }), fc.integer({ min: 1, max: rule.limit + 2 })),
              adjust: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: fc.nat(), weight: 1 }),
              keep: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
            }),
            { minLength: 1, maxLength: 40 },
          ),
        }),
      );

    it('no window of length W ever holds more than the limit (after refunds), admissions are exact, memory == Redis', async () => {
      let admitted = 0;
      let refused = 0;
      let adjusted = 0;
      await fc.assert(
        fc.asyncProperty(scenario, async ({ rule, start, ops }) => {
          const memory = memoryBackend('sliding_window');
          const redisOne = redis('sliding_window').backend!;
          const key = '{http:prop}u:|tok';
          /** The model: every admitted charge's time, the end of its slot, and what it counts for now. */
          const model: { time: number; slot: number; cost: number; decision: [Decision, Decision]; checks: RuleCheck[]; done: boolean }[] = [];
          let second: number = start;
          let now: number = start;
          const sum = (entries: typeof model) => entries.reduce((total, e) => total + e.cost, 0);
          /** What the log counts: each charge until its slot has left the window. */
          const live = (at: number) => sum(model.filter((e) => e.cost > 0 && e.slot > at - rule.windowMs));
          /** The charges made in the window ending at `at`, by their own times. */
          const made = (at: number) => sum(model.filter((e) => e.cost > 0 && e.time > at - rule.windowMs));
          for (const op of ops as Op[]) {
            second += op.gap;
            now = Math.max(now, second + op.offset);
            const open = model.filter((e) => !e.done);
            if (op.adjust !== undefined && open.length > 0) {
              const entry = open[op.adjust % open.length]!;
              entry.done = true;
              const charged = entry.checks[0]!.cost!;
              const delta = Math.floor(charged * op.keep) - charged;
              if (delta === 0) continue;
              await memory.adjust(entry.decision[0], entry.checks, [delta], now);
              await redisOne.adjust(entry.decision[1], entry.checks, [delta], now);
              // Only a charge whose slot is still inside the window is changed: one that has left no
              // longer counts.
              if (entry.slot > now - rule.windowMs) entry.cost += delta;
              adjusted++;
            } else {
              const checks: RuleCheck[] = [{ key, rule, cost: op.cost }];
              const used = live(now);
              const fromMemory = await memory.decide(checks, now);
              const fromRedis = await redisOne.decide(checks, now);
              expect(view(fromRedis)).toEqual(view(fromMemory));
              // Exact on slot times: admitted exactly when the window has room for the whole cost.
              expect(fromMemory.allowed).toBe(op.cost <= rule.limit && used + op.cost <= rule.limit);
              expect(fromMemory.results[0]!.tooLarge === true).toBe(op.cost > rule.limit);
              if (fromMemory.allowed) {
                model.push({ time: now, slot: slotEnd(now, rule.windowMs), cost: op.cost, decision: [fromMemory, fromRedis], checks, done: false });
                admitted++;
              } else {
                refused++;
              }
              expect(fromMemory.results[0]!.remaining).toBe(rule.limit - live(now));
            }
            // The half-open window ending now holds at most the limit (and only admissions change
            // it, so no window ending between two operations holds more).
            expect(live(now)).toBeLessThanOrEqual(rule.limit);
            expect(made(now)).toBeLessThanOrEqual(rule.limit);
            const [m, r] = [await memory.peek([{ key, rule }], now), await redisOne.peek([{ key, rule }], now)];
            expect(r).toEqual(m.map((x) => ({ ...x, resetMs: Math.ceil(x.resetMs) })));
            expect(m[0]!.remaining).toBe(rule.limit - live(now));
          }
        }),
        { numRuns: 40 },
      );
      expect(admitted).toBeGreaterThan(100);
      expect(refused).toBeGreaterThan(20);
      expect(adjusted).toBeGreaterThan(20);
    });
  });
});
