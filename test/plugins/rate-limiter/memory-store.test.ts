import { describe, expect, it } from 'vitest';
import { slidingWindow, tokenBucket, type Algorithm } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { ManualClock } from '../../../src/clock.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import type { RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';

const sliding = slidingWindow as Algorithm<unknown>;

const generous: RuleCheck = { key: 'u:http:alice', rule: { limit: 5, windowMs: 10_000 } };
const strict: RuleCheck = { key: 't:acme', rule: { limit: 1, windowMs: 10_000 } };

describe('MemoryStore.decide', () => {
  it('is all-or-nothing: when a later rule refuses, the earlier rule is not charged', () => {
    const store = new MemoryStore(sliding, 1000);
    const first = store.decide([generous, strict], 0);
    expect(first.allowed).toBe(true);
    expect(first.results.map((r) => r.remaining)).toEqual([4, 0]);

    for (let i = 0; i < 10; i++) {
      const refused = store.decide([generous, strict], 100 + i);
      expect(refused.allowed).toBe(false);
      // The generous rule still shows the same remaining: the refusal cost it nothing.
      expect(refused.results[0]).toEqual({ retryAfterMs: 0, remaining: 4, resetMs: 10_000 - 100 - i });
    }
    // Its remaining quota is all still there.
    for (let i = 0; i < 4; i++) expect(store.decide([generous], 200).allowed).toBe(true);
    expect(store.decide([generous], 200).allowed).toBe(false);
  });

  it('does not create state for a new key when another rule refuses the request', () => {
    const store = new MemoryStore(sliding, 1000);
    store.decide([strict], 0);
    expect(store.size).toBe(1);
    const fresh: RuleCheck = { key: 'u:http:bob', rule: { limit: 5, windowMs: 10_000 } };
    expect(store.decide([fresh, strict], 1).allowed).toBe(false);
    expect(store.size).toBe(1);
    // Bob's full quota is untouched.
    expect(store.decide([fresh], 2).results[0]!.remaining).toBe(4);
  });

  it('returns one result per rule, in the order the rules were given', () => {
    const store = new MemoryStore(sliding, 1000);
    const forward = store.decide([generous, strict], 0);
    expect(forward.results.map((r) => r.remaining)).toEqual([4, 0]);
    const backward = store.decide([strict, generous], 1);
    expect(backward.allowed).toBe(false);
    expect(backward.results).toEqual([
      { retryAfterMs: 9999, remaining: 0, resetMs: 9999 },
      { retryAfterMs: 0, remaining: 4, resetMs: 9999 },
    ]);
  });

  it('asks the client to wait for the slowest refusing rule', () => {
    const store = new MemoryStore(sliding, 1000);
    const soon: RuleCheck = { key: 'a', rule: { limit: 1, windowMs: 10_000 } };
    const later: RuleCheck = { key: 'b', rule: { limit: 1, windowMs: 30_000 } };
    const open: RuleCheck = { key: 'c', rule: { limit: 100, windowMs: 60_000 } };
    expect(store.decide([soon, later, open], 0).allowed).toBe(true);
    const refused = store.decide([soon, later, open], 5000);
    expect(refused.allowed).toBe(false);
    expect(refused.results.map((r) => r.retryAfterMs)).toEqual([5000, 25_000, 0]);
    expect(refused.retryAfterMs).toBe(25_000);
    // After that long, every rule admits again.
    expect(store.decide([soon, later, open], 30_000).allowed).toBe(true);
  });

  it('reports retryAfterMs 0 when admitted', () => {
    const store = new MemoryStore(sliding, 1000);
    const decision = store.decide([generous], 0);
    // `charge` is the time charged at, which adjust() needs.
    expect(decision).toEqual({ allowed: true, retryAfterMs: 0, results: [{ retryAfterMs: 0, remaining: 4, resetMs: 10_000 }], charge: 0 });
  });

  it('uses the algorithm it was built with', () => {
    const store = new MemoryStore(tokenBucket as Algorithm<unknown>, 1000);
    const rule = { limit: 2, windowMs: 10_000 };
    expect(store.decide([{ key: 'k', rule }], 0).allowed).toBe(true);
    expect(store.decide([{ key: 'k', rule }], 0).allowed).toBe(true);
    // GCRA refills one request per 5 s, a sliding window would wait the full 10 s.
    expect(store.decide([{ key: 'k', rule }], 0).retryAfterMs).toBe(5000);
    expect(store.decide([{ key: 'k', rule }], 5000).allowed).toBe(true);
  });
});

describe('MemoryStore bounds', () => {
  it('never holds more than max_keys keys, even with 10,000 unique live keys', () => {
    const store = new MemoryStore(sliding, 100);
    const rule = { limit: 5, windowMs: 3_600_000 };
    let peak = 0;
    for (let i = 0; i < 10_000; i++) {
      expect(store.decide([{ key: `u:http:user-${i}`, rule }], i).allowed).toBe(true);
      peak = Math.max(peak, store.size);
    }
    expect(peak).toBe(100);
    expect(store.size).toBe(100);
    // Every key was live, so all but the last 100 had to be evicted.
    expect(store.evictedLive).toBe(9_900);
    // The most recent keys are the ones kept: their charge still counts.
    expect(store.decide([{ key: 'u:http:user-9999', rule }], 10_000).results[0]!.remaining).toBe(3);
  });

  it('when full, evicts the least recently used key: a busy tenant key survives a stream of one-off users', () => {
    const store = new MemoryStore(sliding, 100);
    const user = { limit: 5, windowMs: 3_600_000 };
    const tenant: RuleCheck = { key: 't:acme', rule: { limit: 100_000, windowMs: 3_600_000 } };
    for (let i = 0; i < 5_000; i++) {
      expect(store.decide([{ key: `u:http:fresh-${i}`, rule: user }, tenant], i).allowed).toBe(true);
    }
    expect(store.size).toBe(100);
    // The tenant was charged on every one of the 5,000 requests: none of it was lost to eviction.
    expect(store.decide([tenant], 5_000).results[0]!.remaining).toBe(100_000 - 5_001);
  });

  it('sweeps expired keys as new keys arrive, without waiting for the bound', () => {
    const store = new MemoryStore(sliding, 1_000_000);
    const rule = { limit: 5, windowMs: 1000 };
    for (let i = 0; i < 1000; i++) store.decide([{ key: `old-${i}`, rule }], 0);
    expect(store.size).toBe(1000);
    // Later, once every old key's window has passed, new traffic sweeps them out.
    for (let i = 0; i < 1000; i++) store.decide([{ key: `new-${i}`, rule }], 5000);
    expect(store.size).toBeLessThan(2000);
    expect(store.size).toBe(1000);
    expect(store.evictedLive).toBe(0);
  });

  it('treats an expired key as new (full quota) even before it is swept', () => {
    const store = new MemoryStore(sliding, 1000);
    const check: RuleCheck = { key: 'k', rule: { limit: 2, windowMs: 1000 } };
    store.decide([check], 0);
    store.decide([check], 0);
    expect(store.decide([check], 999).allowed).toBe(false);
    expect(store.decide([check], 1000).results[0]!.remaining).toBe(1);
  });

  it('close() drops all state', async () => {
    const store = new MemoryStore(sliding, 1000);
    store.decide([generous, strict], 0);
    expect(store.size).toBe(2);
    await store.close();
    expect(store.size).toBe(0);
    expect(store.decide([strict], 1).allowed).toBe(true);
  });
});

describe('MemoryStore: costs and adjustments', () => {
  const tokens: RuleCheck = { key: 'u:http:alice|tok', rule: { limit: 10, windowMs: 10_000, unit: 'tokens' } };

  it('charges each tokens check its cost, requests checks 1, all or nothing', () => {
    const store = new MemoryStore(sliding, 1000);
    const first = store.decide([generous, { ...tokens, cost: 7 }], 0);
    expect(first.results.map((r) => r.remaining)).toEqual([4, 3]);
    // 4 more tokens do not fit: the requests rule is not charged either.
    const refused = store.decide([generous, { ...tokens, cost: 4 }], 1);
    expect(refused.allowed).toBe(false);
    expect(refused.results.map((r) => r.remaining)).toEqual([4, 3]);
    expect(refused.results[1]!.tooLarge).toBeUndefined();
    expect(store.decide([generous, { ...tokens, cost: 3 }], 2).results.map((r) => r.remaining)).toEqual([3, 0]);
  });

  it('adjusts on its clock when no time is given; leaves refused decisions, zero deltas and missing deltas alone', () => {
    const clock = new ManualClock(50_000);
    const store = new MemoryStore(sliding, 1000, clock);
    const checks = [generous, { ...tokens, cost: 4 }];
    const admitted = store.decide(checks, 50_000);
    // Nothing changes for a refused decision, a delta of 0, or a missing one.
    store.adjust({ ...admitted, allowed: false }, checks, [-1, -4]);
    store.adjust(admitted, checks, [0]);
    expect(store.peek(checks, 50_000).map((r) => r.remaining)).toEqual([4, 6]);
    // Without a time, at the store's clock: 3 s later, the evicted key is charged 2 more then.
    store.forget((key) => key === tokens.key);
    clock.set(53_000);
    store.adjust(admitted, checks, [0, 2]);
    expect(store.peek([tokens], 53_000)).toEqual([{ retryAfterMs: 0, remaining: 8, resetMs: 10_000 }]);
    // A refund never takes back more than was charged.
    store.adjust(admitted, checks, [-5, 0]);
    expect(store.peek(checks, 53_000).map((r) => r.remaining)).toEqual([5, 8]);
    expect(store.size).toBe(1);
  });

  it('refuses a cost above the limit up front: too large, one window to wait, nothing charged', () => {
    const store = new MemoryStore(sliding, 1000);
    const decision = store.decide([generous, { ...tokens, cost: 11 }], 0);
    expect(decision).toMatchObject({ allowed: false, retryAfterMs: 10_000 });
    expect(decision.results).toEqual([
      { retryAfterMs: 0, remaining: 5, resetMs: 0 },
      { retryAfterMs: 10_000, remaining: 10, resetMs: 0, tooLarge: true },
    ]);
    expect(store.size).toBe(0);
  });

  it('rejects a cost or an adjustment that is not an integer', () => {
    const store = new MemoryStore(sliding, 1000);
    expect(() => store.decide([{ ...tokens, cost: 2.5 }], 0)).toThrow(RangeError);
    expect(() => store.decide([generous, { ...tokens, cost: 0 }], 0)).toThrow(RangeError);
    const checks = [{ ...tokens, cost: 2 }];
    const decision = store.decide(checks, 0);
    expect(() => store.adjust(decision, checks, [0.5], 0)).toThrow(RangeError);
  });
});
