import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryConcurrencyGate } from '../../../plugins/rate-limiter/concurrency/memory.ts';
import { RedisConcurrencyGate } from '../../../plugins/rate-limiter/concurrency/redis.ts';
import type { ConcurrencyGate, SlotLimit, SlotResult } from '../../../plugins/rate-limiter/concurrency/types.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { ManualClock } from '../../../src/clock.ts';
import { redisTestsEnabled, startRedis, startRedisCluster, type RedisCluster, type RedisProcess } from '../../support/redis.ts';
import { eventually, inspector, sleep, within } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

const user = (id: string, limit: number, tag = '{t:acme}'): SlotLimit => ({ key: `${tag}c:u:http:${id}`, limit, label: 'user' });
const tenant = (limit: number, tag = '{t:acme}'): SlotLimit => ({ key: `${tag}c:`, limit, label: 'tenant' });
const solo = (limit: number, id = 'alice'): SlotLimit => ({ key: `{http:${id}}c:`, limit, label: 'user' });

/** Whether a promise has settled (after letting pending callbacks run). */
async function settled(promise: Promise<unknown>, afterMs = 0): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(afterMs);
  return done;
}

function ok(result: SlotResult): Extract<SlotResult, { ok: true }> {
  if (!result.ok) throw new Error(`refused: ${result.reason} on ${result.limit.label}`);
  return result;
}

/** A deterministic source of randomness (mulberry32), so a failing run can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Harness {
  /** A fresh gate, on state of its own (each Redis gate gets a prefix of its own). */
  make(): ConcurrencyGate;
  /** Keys the gate still keeps (in memory, or in Redis under its prefix). */
  leftover(gate: ConcurrencyGate): Promise<number>;
}

/** The behaviour every backend must show, run on each. */
function sharedBehaviour(harness: () => Harness): void {
  const gates: ConcurrencyGate[] = [];
  const make = (): ConcurrencyGate => {
    const gate = harness().make();
    gates.push(gate);
    return gate;
  };
  afterEach(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
  });

  it('limit 2: a third call waits and gets the slot when one is released', async () => {
    const gate = make();
    const a = ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    const third = Promise.resolve(gate.acquire({ limits: [solo(2)], queueTimeoutMs: 10_000 }));
    expect(await settled(third, 60)).toBe(false);
    expect(await gate.inUse([solo(2).key])).toEqual([2]);
    a.release();
    const got = await within(third, 2_000, 'third call');
    expect(got.ok).toBe(true);
    expect(await gate.inUse([solo(2).key])).toEqual([2]);
    expect(gate.held).toBe(2);
  });

  it('limit 2: a third call is refused after its queue timeout when nothing is released, naming the limit', async () => {
    const gate = make();
    ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    const refused = await within(Promise.resolve(gate.acquire({ limits: [solo(2)], queueTimeoutMs: 50 })), 2_000, 'third call');
    expect(refused).toMatchObject({ ok: false, reason: 'timeout', limit: { label: 'user', limit: 2 } });
    // Timers never fire early: it did wait (no upper bound asserted: the machine may be slow).
    expect((refused as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(45);
    expect(await gate.inUse([solo(2).key])).toEqual([2]);
    expect(gate.held).toBe(2);
  });

  it('queueTimeoutMs 0 refuses at once when full', async () => {
    const gate = make();
    ok(await gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }));
    const refused = await gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 });
    expect(refused).toMatchObject({ ok: false, reason: 'timeout', limit: { label: 'user' } });
    expect(gate.held).toBe(1);
  });

  it('is all-or-nothing: a full tenant refuses a user with room and takes nothing from the user', async () => {
    const gate = make();
    const other = ok(await gate.acquire({ limits: [user('bob', 2), tenant(1)], queueTimeoutMs: 0 }));
    const refused = await gate.acquire({ limits: [user('alice', 2), tenant(1)], queueTimeoutMs: 0 });
    expect(refused).toMatchObject({ ok: false, reason: 'timeout', limit: { label: 'tenant', limit: 1 } });
    expect(await gate.inUse([user('alice', 2).key, tenant(1).key])).toEqual([0, 1]);

    // While Alice waits for the tenant, her own key is not taken either.
    const waiting = Promise.resolve(gate.acquire({ limits: [user('alice', 2), tenant(1)], queueTimeoutMs: 10_000 }));
    expect(await settled(waiting, 40)).toBe(false);
    expect(await gate.inUse([user('alice', 2).key])).toEqual([0]);
    other.release();
    ok(await within(waiting, 2_000, 'alice'));
    expect(await gate.inUse([user('alice', 2).key, user('bob', 2).key, tenant(1).key])).toEqual([1, 0, 1]);
  });

  it('a call aborted while waiting is refused (aborted) and holds nothing', async () => {
    const gate = make();
    const first = ok(await gate.acquire({ limits: [user('bob', 1), tenant(1)], queueTimeoutMs: 0 }));
    const controller = new AbortController();
    const waiting = Promise.resolve(gate.acquire({ limits: [user('alice', 1), tenant(1)], queueTimeoutMs: 10_000, signal: controller.signal }));
    expect(await settled(waiting, 30)).toBe(false);
    controller.abort();
    const refused = await within(waiting, 2_000, 'aborted waiter');
    expect(refused).toMatchObject({ ok: false, reason: 'aborted', limit: { label: 'tenant' } });
    first.release();
    await sleep(30);
    expect(await gate.inUse([user('alice', 1).key, user('bob', 1).key, tenant(1).key])).toEqual([0, 0, 0]);
    expect(gate.held).toBe(0);
    expect(await harness().leftover(gate)).toBe(0);
  });

  it('a call aborted before it asks is refused at once', async () => {
    const gate = make();
    const signal = AbortSignal.abort();
    expect(await gate.acquire({ limits: [solo(5)], queueTimeoutMs: 1_000, signal })).toMatchObject({ ok: false, reason: 'aborted', waitedMs: 0 });
    expect(gate.held).toBe(0);
    expect(await gate.inUse([solo(5).key])).toEqual([0]);
  });

  it('a slot held when its call is aborted is released, and wakes a waiter', async () => {
    const gate = make();
    const controller = new AbortController();
    ok(await gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0, signal: controller.signal }));
    const next = Promise.resolve(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 10_000 }));
    expect(await settled(next, 30)).toBe(false);
    controller.abort();
    const got = ok(await within(next, 2_000, 'next call'));
    expect(gate.held).toBe(1);
    got.release();
    expect(gate.held).toBe(0);
    expect(await gate.inUse([solo(1).key])).toEqual([0]);
  });

  it('release() twice releases once', async () => {
    const gate = make();
    const a = ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    a.release();
    a.release();
    expect(gate.held).toBe(1);
    expect(await gate.inUse([solo(2).key])).toEqual([1]);
    ok(await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
    expect((await gate.acquire({ limits: [solo(2)], queueTimeoutMs: 0 })).ok).toBe(false);
    expect(await gate.inUse([solo(2).key])).toEqual([2]);
  });

  it('forget() drops a key\'s slots; a release from before then frees nothing of the new holders', async () => {
    const gate = make();
    const old = ok(await gate.acquire({ limits: [user('alice', 1), tenant(5)], queueTimeoutMs: 0 }));
    expect(await gate.forget!('{t:acme}', (key) => key === user('alice', 1).key)).toBe(1);
    expect(await gate.inUse([user('alice', 1).key, tenant(5).key])).toEqual([0, 1]);
    ok(await gate.acquire({ limits: [user('alice', 1), tenant(5)], queueTimeoutMs: 0 }));
    old.release();
    expect(await gate.inUse([user('alice', 1).key, tenant(5).key])).toEqual([1, 1]);
    expect((await gate.acquire({ limits: [user('alice', 1), tenant(5)], queueTimeoutMs: 0 })).ok).toBe(false);
  });

  it('close() refuses waiters (aborted) and releases every slot', async () => {
    const gate = make();
    ok(await gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }));
    const waiting = Promise.resolve(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 10_000 }));
    expect(await settled(waiting, 30)).toBe(false);
    await gate.close();
    expect(await within(waiting, 1_000, 'waiter at close')).toMatchObject({ ok: false, reason: 'aborted' });
    expect(gate.held).toBe(0);
    expect((await gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 })).ok).toBe(false);
    expect(await gate.inUse([solo(1).key])).toEqual([0]);
  });

  it('1,000 calls cancelled at random points leak no slot and never exceed a limit', async () => {
    const gate = make();
    const random = seeded(20_240_611);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const users = ['alice', 'bob'];
    const tenantLimit = tenant(4);
    const holding = new Map<string, number>();
    const most = new Map<string, number>();
    const outcomes = { ok: 0, timeout: 0, aborted: 0, unavailable: 0 };
    const modes = { before: 0, queued: 0, held: 0, after: 0, normal: 0 };
    const violations: string[] = [];
    const take = (limits: readonly SlotLimit[], by: 1 | -1) => {
      for (const { key, limit } of limits) {
        const now = (holding.get(key) ?? 0) + by;
        holding.set(key, now);
        most.set(key, Math.max(most.get(key) ?? 0, now));
        if (now > limit) violations.push(`${now} holders of ${key} (limit ${limit})`);
      }
    };

    const call = async (): Promise<void> => {
      const limits = [user(pick(users), 3), tenantLimit];
      const mode = pick(['before', 'queued', 'held', 'after', 'normal'] as const);
      modes[mode]++;
      const controller = new AbortController();
      const queueTimeoutMs = pick([0, 5, 20, 60]);
      const holdMs = Math.floor(random() * 8);
      let abortTimer: NodeJS.Timeout | undefined;
      if (mode === 'before') controller.abort();
      // Fires while queued, or (if the slot came first) while held.
      if (mode === 'queued') abortTimer = setTimeout(() => controller.abort(), Math.floor(random() * 15));
      const heldAbortAt = Math.floor(random() * (holdMs + 1));
      const releaseTwice = random() < 0.3;
      const result = await gate.acquire({ limits, queueTimeoutMs, signal: controller.signal });
      outcomes[result.ok ? 'ok' : result.reason]++;
      if (!result.ok) {
        clearTimeout(abortTimer);
        return;
      }
      // This caller holds from here until it releases or its signal aborts (the gate then releases).
      let mine = !controller.signal.aborted;
      if (mine) take(limits, 1);
      const stop = () => {
        if (mine) take(limits, -1);
        mine = false;
      };
      controller.signal.addEventListener('abort', stop, { once: true });
      if (mode === 'held') {
        await sleep(heldAbortAt);
        controller.abort();
        await sleep(holdMs - heldAbortAt);
        // A cancelled call may never get to release(): the abort alone must free the slot.
        if (releaseTwice) return;
      } else {
        await sleep(holdMs);
      }
      stop();
      result.release();
      if (releaseTwice) result.release();
      if (mode === 'after') controller.abort();
      clearTimeout(abortTimer);
    };

    const workers = Array.from({ length: 40 }, async () => {
      for (let i = 0; i < 25; i++) await call();
    });
    await within(Promise.all(workers), 25_000, '1,000 calls');

    expect(violations).toEqual([]);
    expect(outcomes.ok + outcomes.timeout + outcomes.aborted).toBe(1_000);
    // Every kind of call happened, and the limits were reached (there was contention to get wrong).
    expect(outcomes.unavailable).toBe(0);
    for (const count of [outcomes.ok, outcomes.timeout, outcomes.aborted, ...Object.values(modes)]) expect(count).toBeGreaterThan(10);
    expect(most.get(tenantLimit.key)).toBe(4);
    expect(Math.max(...users.map((u) => most.get(user(u, 3).key) ?? 0))).toBe(3);

    expect(gate.held).toBe(0);
    await eventually(async () => (await gate.inUse([...users.map((u) => user(u, 3).key), tenantLimit.key])).every((n) => n === 0), 2_000, 'every key free');
    expect(await harness().leftover(gate)).toBe(0);
  });
}

describe('MemoryConcurrencyGate', () => {
  sharedBehaviour(() => ({
    make: () => new MemoryConcurrencyGate(),
    leftover: async (gate) => (gate as MemoryConcurrencyGate).keys,
  }));

  it('answers synchronously when it can: room, or full with no queue', () => {
    const gate = new MemoryConcurrencyGate();
    const first = gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 });
    expect(first).toMatchObject({ ok: true });
    expect(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 })).toMatchObject({ ok: false, reason: 'timeout', waitedMs: 0 });
    expect(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 100 })).toBeInstanceOf(Promise);
    void gate.close();
  });

  it('serves waiters in arrival order', async () => {
    const gate = new MemoryConcurrencyGate();
    const first = ok(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }) as SlotResult);
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      Promise.resolve(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 10_000 })).then((r) => {
        order.push(n);
        return ok(r);
      }),
    );
    first.release();
    (await waiters[0]!).release();
    (await waiters[1]!).release();
    (await waiters[2]!).release();
    expect(order).toEqual([1, 2, 3]);
    expect(gate.keys).toBe(0);
  });

  it('a user waiting at their own cap does not hold up another user of the tenant', async () => {
    const gate = new MemoryConcurrencyGate();
    ok(gate.acquire({ limits: [user('alice', 1), tenant(3)], queueTimeoutMs: 0 }) as SlotResult);
    const alice = Promise.resolve(gate.acquire({ limits: [user('alice', 1), tenant(3)], queueTimeoutMs: 10_000 }));
    expect(gate.acquire({ limits: [user('bob', 1), tenant(3)], queueTimeoutMs: 0 })).toMatchObject({ ok: true });
    expect(await settled(alice)).toBe(false);
    await gate.close();
  });

  it('a waiter for a user and a tenant waits until both have room', async () => {
    const gate = new MemoryConcurrencyGate();
    const aliceSlot = ok(gate.acquire({ limits: [user('alice', 1), tenant(2)], queueTimeoutMs: 0 }) as SlotResult);
    const bobSlot = ok(gate.acquire({ limits: [user('bob', 1), tenant(2)], queueTimeoutMs: 0 }) as SlotResult);
    // Both of Alice's keys are full.
    const alice = Promise.resolve(gate.acquire({ limits: [user('alice', 1), tenant(2)], queueTimeoutMs: 10_000 }));
    bobSlot.release();
    expect(await settled(alice)).toBe(false);
    expect(await gate.inUse([user('alice', 1).key, tenant(2).key])).toEqual([1, 1]);
    aliceSlot.release();
    ok(await alice);
    expect(await gate.inUse([user('alice', 1).key, tenant(2).key])).toEqual([1, 1]);
    await gate.close();
  });

  it('a slot not released within the lease counts as released; its late release frees nothing', async () => {
    const clock = new ManualClock(1_000);
    const gate = new MemoryConcurrencyGate({ leaseMs: 500, clock });
    const forgotten = ok(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }) as SlotResult);
    clock.advance(499);
    expect(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 })).toMatchObject({ ok: false });
    clock.advance(1);
    expect(gate.held).toBe(0);
    const next = ok(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }) as SlotResult);
    forgotten.release();
    expect(await gate.inUse([solo(1).key])).toEqual([1]);
    next.release();
    expect(gate.keys).toBe(0);
  });

  it('a waiter gets a slot whose lease expired', async () => {
    const clock = new ManualClock(0);
    const gate = new MemoryConcurrencyGate({ leaseMs: 500, clock });
    ok(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }) as SlotResult);
    const waiting = Promise.resolve(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 10_000 }));
    expect(await settled(waiting)).toBe(false);
    clock.advance(500);
    // Expiry is lazy: whatever looks at the gate next (here the operator's view) serves the waiter.
    expect(await gate.inUse([solo(1).key])).toEqual([1]);
    ok(await waiting);
    expect(gate.held).toBe(1);
    await gate.close();
  });

  it('the lease timer serves a waiter when no one else looks', async () => {
    const gate = new MemoryConcurrencyGate({ leaseMs: 30 });
    ok(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 }) as SlotResult);
    const got = await within(Promise.resolve(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 10_000 })), 2_000, 'waiter');
    expect(got.ok).toBe(true);
    await gate.close();
  });

  it('keeps no state for keys with nothing in use or waiting', async () => {
    const gate = new MemoryConcurrencyGate();
    const slots = Array.from({ length: 100 }, (_, i) => ok(gate.acquire({ limits: [user(`u${i}`, 1), tenant(1000)], queueTimeoutMs: 0 }) as SlotResult));
    const refused = await gate.acquire({ limits: [user('u0', 1), tenant(1000)], queueTimeoutMs: 5 });
    expect(refused.ok).toBe(false);
    expect(gate.keys).toBe(101);
    for (const slot of slots) slot.release();
    expect(gate.keys).toBe(0);
    expect(gate.queued).toBe(0);
  });
});

describe.skipIf(!enabled)('RedisConcurrencyGate', () => {
  let server: RedisProcess;
  let admin: Redis;
  const clients: Redis[] = [];
  let prefixes = 0;

  beforeAll(async () => {
    server = await startRedis();
    admin = inspector(server.url);
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => (c.status === 'end' ? undefined : c.quit().catch(() => {}))));
    await admin?.quit();
    await server?.stop();
  });

  async function client(): Promise<Redis> {
    const created = createRedisClient({ url: server.url, timeoutMs: 2_000 }) as Redis;
    await created.connect();
    clients.push(created);
    return created;
  }
  let shared: Redis | undefined;
  beforeAll(async () => {
    shared = await client();
  });

  const prefixOf = new WeakMap<ConcurrencyGate, string>();
  const gateOn = (redis: Redis, prefix: string, options: { leaseMs?: number } = {}): RedisConcurrencyGate => {
    const gate = new RedisConcurrencyGate({ client: redis, prefix, retryMs: 5, ...options });
    prefixOf.set(gate, prefix);
    return gate;
  };

  sharedBehaviour(() => ({
    make: () => gateOn(shared!, `q${++prefixes}`),
    leftover: async (gate) => (await admin.keys(`${prefixOf.get(gate)}:*`)).length,
  }));

  it('two gateways (two clients) share one limit exactly', async () => {
    const prefix = `q${++prefixes}`;
    const one = gateOn(await client(), prefix);
    const two = gateOn(await client(), prefix);
    try {
      const a = ok(await one.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
      ok(await two.acquire({ limits: [solo(2)], queueTimeoutMs: 0 }));
      expect(await one.acquire({ limits: [solo(2)], queueTimeoutMs: 0 })).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await two.acquire({ limits: [solo(2)], queueTimeoutMs: 0 })).toMatchObject({ ok: false, reason: 'timeout' });
      // A waiter on the second gateway sees the first one's release (by polling).
      const waiting = two.acquire({ limits: [solo(2)], queueTimeoutMs: 10_000 });
      a.release();
      ok(await within(Promise.resolve(waiting), 2_000, 'waiter on the other gateway'));
      expect(await one.inUse([solo(2).key])).toEqual([2]);

      // Many at once from both: never more than 2 granted.
      await one.close();
      await two.close();
      const three = gateOn(await client(), prefix);
      const four = gateOn(await client(), prefix);
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? three : four).acquire({ limits: [solo(2, 'bob')], queueTimeoutMs: 0 })),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(2);
      await three.close();
      await four.close();
      expect(await admin.keys(`${prefix}:*`)).toEqual([]);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('keys carry a TTL a little past the lease', async () => {
    const gate = gateOn(shared!, `q${++prefixes}`, { leaseMs: 5_000 });
    ok(await gate.acquire({ limits: [user('alice', 1), tenant(1)], queueTimeoutMs: 0 }));
    for (const limit of [user('alice', 1), tenant(1)]) {
      const ttl = await admin.pttl(`${prefixOf.get(gate)}:${limit.key}`);
      expect(ttl).toBeGreaterThan(4_000);
      expect(ttl).toBeLessThanOrEqual(6_000);
    }
    await gate.close();
    expect(await admin.keys(`${prefixOf.get(gate)}:*`)).toEqual([]);
  });

  it('a crashed gateway\'s slots free themselves after the lease; a live holder keeps its slot through renewals', async () => {
    const prefix = `q${++prefixes}`;
    const crashingClient = await client();
    // Short leases, but long enough that a busy shared machine does not miss a renewal (every 167 ms).
    const crashing = gateOn(crashingClient, prefix, { leaseMs: 500 });
    const live = gateOn(await client(), prefix, { leaseMs: 500 });
    const other = gateOn(await client(), prefix, { leaseMs: 500 });
    try {
      ok(await crashing.acquire({ limits: [solo(1, 'crash')], queueTimeoutMs: 0 }));
      const kept = ok(await live.acquire({ limits: [solo(1, 'live')], queueTimeoutMs: 0 }));
      // The crash: the connection drops without a release, and nothing from that gateway reaches Redis again.
      crashingClient.disconnect();
      await crashing.close();
      expect(crashing.errors).toBeGreaterThan(0);
      expect(await other.inUse([solo(1, 'crash').key])).toEqual([1]);

      const freed = await within(Promise.resolve(other.acquire({ limits: [solo(1, 'crash')], queueTimeoutMs: 5_000 })), 6_000, 'crashed slot');
      expect(freed.ok).toBe(true);

      // Three lease periods on, the live holder still holds.
      await sleep(1_500);
      expect(await other.acquire({ limits: [solo(1, 'live')], queueTimeoutMs: 0 })).toMatchObject({ ok: false, reason: 'timeout' });
      expect(await other.inUse([solo(1, 'live').key])).toEqual([1]);
      expect(live.errors).toBe(0);
      expect(live.lostLeases).toBe(0);
      kept.release();
      ok(await within(Promise.resolve(other.acquire({ limits: [solo(1, 'live')], queueTimeoutMs: 2_000 })), 3_000, 'released slot'));
    } finally {
      await live.close();
      await other.close();
    }
  });

  it('acquire rejects when Redis cannot be reached; nothing is held', async () => {
    const broken = await client();
    broken.disconnect();
    const gate = gateOn(broken, `q${++prefixes}`);
    await expect(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 0 })).rejects.toThrow();
    await expect(gate.acquire({ limits: [solo(1)], queueTimeoutMs: 1_000 })).rejects.toThrow();
    expect(gate.held).toBe(0);
    expect(gate.queued).toBe(0);
    await gate.close();
  });
});

describe.skipIf(!enabled)('RedisConcurrencyGate on a 3-master Redis Cluster', () => {
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

  it('user and tenant keys under one hash tag acquire, wait, renew and release', async () => {
    const gate = new RedisConcurrencyGate({ client, prefix: 'cq', leaseMs: 500, retryMs: 5 });
    try {
      // Tenants spread over the masters: each request is routed by its own tag.
      const tags = Array.from({ length: 12 }, (_, i) => `{t:tenant-${i}}`);
      const slots = await Promise.all(tags.map(async (tag) => ok(await gate.acquire({ limits: [user('alice', 1, tag), tenant(2, tag)], queueTimeoutMs: 0 }))));
      for (const tag of tags) {
        expect(await gate.acquire({ limits: [user('alice', 1, tag), tenant(2, tag)], queueTimeoutMs: 0 })).toMatchObject({ ok: false, limit: { label: 'user' } });
        ok(await gate.acquire({ limits: [user('bob', 1, tag), tenant(2, tag)], queueTimeoutMs: 0 }));
        expect(await gate.acquire({ limits: [user('carol', 1, tag), tenant(2, tag)], queueTimeoutMs: 0 })).toMatchObject({ ok: false, limit: { label: 'tenant' } });
      }
      // Held through several lease periods: renewals reach every master.
      await sleep(1_500);
      expect(gate.errors).toBe(0);
      expect(gate.lostLeases).toBe(0);
      for (const tag of tags) expect(await gate.inUse([user('alice', 1, tag).key, tenant(2, tag).key])).toEqual([1, 2]);

      const waiting = gate.acquire({ limits: [user('alice', 1, tags[0]), tenant(2, tags[0])], queueTimeoutMs: 5_000 });
      slots[0]!.release();
      ok(await within(Promise.resolve(waiting), 3_000, 'cluster waiter'));
      for (const slot of slots) slot.release();
    } finally {
      await gate.close();
    }
    for (const tag of Array.from({ length: 12 }, (_, i) => `{t:tenant-${i}}`)) {
      expect(await gate.inUse([user('alice', 1, tag).key, user('bob', 1, tag).key, tenant(2, tag).key])).toEqual([0, 0, 0]);
    }
  });
});
