import { describe, expect, it } from 'vitest';
import { slidingWindow, tokenBucket, type Algorithm } from '../../../plugins/rate-limiter/algorithms/index.ts';
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
    expect(decision).toEqual({ allowed: true, retryAfterMs: 0, results: [{ retryAfterMs: 0, remaining: 4, resetMs: 10_000 }] });
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
