import { describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import type { BreakerState } from '../../../plugins/rate-limiter/breaker.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { ResilientStore, type BackendErrorPolicy } from '../../../plugins/rate-limiter/store/resilient.ts';
import type { Decision, RateStore, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { ManualClock } from '../../../src/clock.ts';

type Behaviour = 'resolve' | 'reject' | 'throw' | 'hang';

/** A primary whose every answer the test decides, counting the calls it gets. */
class FakePrimary implements RateStore {
  calls = 0;
  behaviour: Behaviour = 'resolve';
  /** Decisions still hanging: settle them by hand. */
  readonly hanging: { resolve: (d: Decision) => void; reject: (e: Error) => void }[] = [];
  closed = false;

  get size(): number {
    return 0;
  }

  decide(checks: readonly RuleCheck[]): Promise<Decision> {
    this.calls++;
    switch (this.behaviour) {
      case 'resolve':
        return Promise.resolve(PRIMARY_DECISION(checks));
      case 'reject':
        return Promise.reject(new Error(`primary failure #${this.calls}`));
      case 'throw':
        throw new Error(`primary threw #${this.calls}`);
      case 'hang':
        return new Promise((resolve, reject) => this.hanging.push({ resolve, reject }));
    }
  }

  /** Adjustments asked of it, in order. */
  readonly adjusted: { charge: unknown; deltas: readonly number[]; now: number | undefined }[] = [];
  adjustBehaviour: 'resolve' | 'reject' | 'throw' = 'resolve';

  adjust(decision: Decision, _checks: readonly RuleCheck[], deltas: readonly number[], now?: number): Promise<void> {
    if (this.adjustBehaviour === 'throw') throw new Error('adjust threw');
    this.adjusted.push({ charge: decision.charge, deltas, now });
    return this.adjustBehaviour === 'reject' ? Promise.reject(new Error('adjust failed')) : Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** What the fake primary answers: recognisable (remaining 777), so decisions show who made them. */
const PRIMARY_DECISION = (checks: readonly RuleCheck[]): Decision => ({
  allowed: true,
  retryAfterMs: 0,
  results: checks.map(() => ({ retryAfterMs: 0, remaining: 777, resetMs: 1 })),
  charge: 'primary-charge',
});

const CHECKS: RuleCheck[] = [{ key: '{http:alice}u:', rule: { limit: 3, windowMs: 60_000 } }];
const T0 = 1_800_000_000_000;

function setup(policy: BackendErrorPolicy, options: { probeIntervalMs?: number } = {}) {
  const clock = new ManualClock(T0);
  const primary = new FakePrimary();
  const fallback = new MemoryStore(ALGORITHMS.sliding_window, 1_000);
  const changes: { state: BreakerState; previous: BreakerState; error: string }[] = [];
  const store = new ResilientStore({
    primary,
    fallback,
    policy,
    clock,
    ...(options.probeIntervalMs === undefined ? {} : { probeIntervalMs: options.probeIntervalMs }),
    onStateChange: (state, previous, lastError) => changes.push({ state, previous, error: (lastError as Error | undefined)?.message ?? '' }),
  });
  const decide = async (checks: RuleCheck[] = CHECKS) => store.decide(checks, clock.now());
  return { clock, primary, fallback, store, changes, decide };
}

/** Three failing requests: the breaker opens. */
async function breakIt(s: ReturnType<typeof setup>, behaviour: Behaviour = 'reject') {
  s.primary.behaviour = behaviour;
  for (let i = 0; i < 3; i++) await s.decide();
  expect(s.store.stats().breaker).toBe('open');
}

const isPrimary = (d: Decision) => d.results[0]?.remaining === 777;

describe('ResilientStore: the breaker around the primary', () => {
  it('decides with the primary while it answers', async () => {
    const s = setup('fallback');
    for (let i = 0; i < 5; i++) expect(isPrimary(await s.decide())).toBe(true);
    expect(s.primary.calls).toBe(5);
    expect(s.store.stats()).toEqual({ breaker: 'closed', primary: 5, degraded: 0, failures: 0 });
    expect(s.fallback.size).toBe(0);
  });

  it.each(['reject', 'throw'] as const)('opens after 3 consecutive failures (%s); then the primary gets no calls at all', async (behaviour) => {
    const s = setup('fallback');
    s.primary.behaviour = behaviour;
    await s.decide();
    await s.decide();
    expect(s.store.stats().breaker).toBe('closed');
    await s.decide();
    expect(s.store.stats()).toEqual({ breaker: 'open', primary: 0, degraded: 3, failures: 3 });
    expect(s.primary.calls).toBe(3);

    // 500 requests over the next 999 ms: not one reaches the primary.
    for (let t = 0; t < 1_000; t += 2) {
      s.clock.set(T0 + t);
      await s.decide();
    }
    expect(s.primary.calls).toBe(3);
    expect(s.store.stats()).toEqual({ breaker: 'open', primary: 0, degraded: 503, failures: 3 });
  });

  it('sends one probe per probe interval; the probe closes the breaker when it succeeds', async () => {
    const s = setup('fallback', { probeIntervalMs: 1_000 });
    await breakIt(s);
    s.clock.advance(999);
    await s.decide();
    expect(s.primary.calls).toBe(3);
    s.clock.advance(1);
    // The probe fails: the breaker reopens and waits another full interval.
    await s.decide();
    expect(s.primary.calls).toBe(4);
    expect(s.store.stats().breaker).toBe('open');
    for (let i = 0; i < 99; i++) {
      s.clock.advance(10);
      await s.decide();
    }
    expect(s.primary.calls).toBe(4);
    s.clock.advance(10);
    s.primary.behaviour = 'resolve';
    const probe = await s.decide();
    expect(s.primary.calls).toBe(5);
    expect(isPrimary(probe)).toBe(true);
    expect(s.store.stats().breaker).toBe('closed');
    // Back on the primary for everything.
    for (let i = 0; i < 10; i++) expect(isPrimary(await s.decide())).toBe(true);
    expect(s.primary.calls).toBe(15);
    expect(s.store.stats()).toEqual({ breaker: 'closed', primary: 11, degraded: 3 + 1 + 1 + 99, failures: 4 });
  });

  it('while a probe hangs, every other request is decided at once without the primary', async () => {
    const s = setup('open');
    await breakIt(s);
    s.primary.behaviour = 'hang';
    s.clock.advance(1_000);
    const probe = s.store.decide(CHECKS, s.clock.now());
    expect(s.primary.calls).toBe(4);
    expect(s.store.stats().breaker).toBe('half_open');
    // Within the probe interval, no second probe: the first one is out.
    for (let i = 0; i < 49; i++) {
      s.clock.advance(20);
      const decision = s.store.decide(CHECKS, s.clock.now());
      // Decided synchronously: nothing to wait for.
      expect(decision).toEqual({ allowed: true, retryAfterMs: 0, results: [] });
    }
    expect(s.primary.calls).toBe(4);
    // A probe that has not come back within an interval is given up on: one more goes out.
    s.clock.advance(20);
    void s.store.decide(CHECKS, s.clock.now());
    expect(s.primary.calls).toBe(5);
    s.primary.hanging[0]!.resolve(PRIMARY_DECISION(CHECKS));
    expect(isPrimary(await probe)).toBe(true);
    expect(s.store.stats().breaker).toBe('closed');
  });

  it('a hanging probe that finally fails reopens the breaker', async () => {
    const s = setup('closed');
    await breakIt(s);
    s.primary.behaviour = 'hang';
    s.clock.advance(1_000);
    const probe = s.store.decide(CHECKS, s.clock.now());
    s.clock.advance(3_000);
    s.primary.hanging[0]!.reject(new Error('timed out'));
    expect(await probe).toMatchObject({ allowed: false, unavailable: true });
    expect(s.store.stats()).toMatchObject({ breaker: 'open', failures: 4 });
    // The next probe is one interval after the failure, not after the probe was sent.
    s.primary.behaviour = 'resolve';
    s.clock.advance(999);
    await s.decide();
    expect(s.primary.calls).toBe(4);
    s.clock.advance(1);
    expect(isPrimary(await s.decide())).toBe(true);
    expect(s.primary.calls).toBe(5);
  });
});

describe('ResilientStore: the policy when the primary fails', () => {
  it('fallback: the memory store decides, so the limit still applies, per key', async () => {
    const s = setup('fallback');
    await breakIt(s);
    // Those three failing requests were already decided by memory: all admitted, 0 left.
    const more = [];
    for (let i = 0; i < 7; i++) more.push(await s.decide());
    expect(more.map((d) => d.allowed)).toEqual([false, false, false, false, false, false, false]);
    expect(more[0]!.results).toEqual([{ retryAfterMs: 60_000, remaining: 0, resetMs: 60_000 }]);
    // Another user has their own full quota.
    const bob: RuleCheck[] = [{ key: '{http:bob}u:', rule: CHECKS[0]!.rule }];
    const bobs = [];
    for (let i = 0; i < 5; i++) bobs.push(await s.decide(bob));
    expect(bobs.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(bobs.map((d) => d.results[0]!.remaining)).toEqual([2, 1, 0, 0, 0]);
    expect(s.primary.calls).toBe(3);
    expect(s.store.size).toBe(2);
  });

  it('fallback also decides the failing requests themselves, before the breaker opens', async () => {
    const s = setup('fallback');
    s.primary.behaviour = 'reject';
    const first = await s.decide();
    expect(first).toMatchObject({ allowed: true, retryAfterMs: 0, results: [{ retryAfterMs: 0, remaining: 2, resetMs: 60_000 }] });
    expect(s.store.stats()).toEqual({ breaker: 'closed', primary: 0, degraded: 1, failures: 1 });
  });

  it('open: admits without looking (no results), never refuses', async () => {
    const s = setup('open');
    await breakIt(s);
    for (let i = 0; i < 20; i++) {
      const d = await s.decide();
      expect(d).toEqual({ allowed: true, retryAfterMs: 0, results: [] });
      expect(d.unavailable).toBeUndefined();
    }
    expect(s.fallback.size).toBe(0);
    expect(s.store.stats()).toEqual({ breaker: 'open', primary: 0, degraded: 23, failures: 3 });
  });

  it('closed: refuses every request as unavailable (not rate-limited), retry after the probe interval', async () => {
    const s = setup('closed', { probeIntervalMs: 2_000 });
    s.primary.behaviour = 'reject';
    const decisions = [];
    for (let i = 0; i < 10; i++) decisions.push(await s.decide());
    for (const d of decisions) expect(d).toEqual({ allowed: false, unavailable: true, retryAfterMs: 2_000, results: [] });
    expect(s.fallback.size).toBe(0);
    expect(s.primary.calls).toBe(3);
  });
});

describe('ResilientStore: notifications and stats', () => {
  it('calls onStateChange once per transition, with the error that caused it, never per request', async () => {
    const s = setup('fallback');
    await breakIt(s);
    for (let i = 0; i < 200; i++) await s.decide();
    expect(s.changes).toEqual([{ state: 'open', previous: 'closed', error: 'primary failure #3' }]);
    s.clock.advance(1_000);
    await s.decide();
    expect(s.changes.slice(1)).toEqual([
      { state: 'half_open', previous: 'open', error: 'primary failure #3' },
      { state: 'open', previous: 'half_open', error: 'primary failure #4' },
    ]);
    s.primary.behaviour = 'resolve';
    s.clock.advance(1_000);
    await s.decide();
    for (let i = 0; i < 200; i++) await s.decide();
    expect(s.changes.map((c) => `${c.previous}->${c.state}`)).toEqual([
      'closed->open',
      'open->half_open',
      'half_open->open',
      'open->half_open',
      'half_open->closed',
    ]);
    expect(s.primary.calls).toBe(3 + 1 + 1 + 200);
  });

  it('markDown opens the breaker at once (startup without Redis) and probes one interval later', async () => {
    const s = setup('closed');
    s.store.markDown(new Error('ECONNREFUSED'));
    expect(s.changes).toEqual([{ state: 'open', previous: 'closed', error: 'ECONNREFUSED' }]);
    for (let i = 0; i < 10; i++) expect((await s.decide()).unavailable).toBe(true);
    expect(s.primary.calls).toBe(0);
    s.clock.advance(1_000);
    expect(isPrimary(await s.decide())).toBe(true);
    expect(s.primary.calls).toBe(1);
    expect(s.store.stats()).toEqual({ breaker: 'closed', primary: 1, degraded: 10, failures: 0 });
  });

  it('close() closes both stores', async () => {
    const s = setup('fallback');
    await breakIt(s);
    expect(s.fallback.size).toBe(1);
    await s.store.close();
    expect(s.primary.closed).toBe(true);
    expect(s.fallback.size).toBe(0);
  });
});

describe('ResilientStore: an adjustment goes to the store that decided', () => {
  it('a primary decision is adjusted by the primary, with its own charge, even after the breaker opened', async () => {
    const s = setup('fallback');
    const decision = await s.decide();
    expect(isPrimary(decision)).toBe(true);
    await s.store.adjust(decision, CHECKS, [-1], T0 + 5);
    expect(s.primary.adjusted).toEqual([{ charge: 'primary-charge', deltas: [-1], now: T0 + 5 }]);
    await breakIt(s);
    await s.store.adjust(decision, CHECKS, [2]);
    expect(s.primary.adjusted).toHaveLength(2);
    expect(s.primary.adjusted[1]).toMatchObject({ charge: 'primary-charge', deltas: [2] });
  });

  it('a fallback decision is adjusted in the fallback (on the store clock), and the primary hears nothing of it', async () => {
    const s = setup('fallback');
    await breakIt(s);
    // The three failing requests took the fallback's whole quota of 3; a refund gives one back.
    const taken = await s.decide();
    expect(taken.allowed).toBe(false);
    const tokens: RuleCheck[] = [{ key: '{http:alice}u:|tok', rule: { limit: 10, windowMs: 60_000, unit: 'tokens' }, cost: 6 }];
    const first = await s.decide(tokens);
    expect(first.results[0]!.remaining).toBe(4);
    s.clock.advance(100);
    s.store.adjust(first, tokens, [-6]);
    expect((await s.decide([{ ...tokens[0]!, cost: 1 }])).results[0]!.remaining).toBe(9);
    expect(s.primary.adjusted).toEqual([]);
  });

  it('nothing is adjusted after a blind admission or an unavailable refusal', async () => {
    for (const policy of ['open', 'closed'] as const) {
      const s = setup(policy);
      await breakIt(s);
      const blind = await s.decide();
      expect(s.store.adjust(blind, CHECKS, [-1])).toBeUndefined();
      expect(s.primary.adjusted).toEqual([]);
      expect(s.fallback.size).toBe(0);
    }
  });

  it('a failing primary adjustment rejects; one that throws rejects too, never throwing', async () => {
    const s = setup('fallback');
    const decision = await s.decide();
    s.primary.adjustBehaviour = 'reject';
    await expect(s.store.adjust(decision, CHECKS, [-1])).rejects.toThrow('adjust failed');
    s.primary.adjustBehaviour = 'throw';
    let pending: void | Promise<void> = undefined;
    expect(() => (pending = s.store.adjust(decision, CHECKS, [-1]))).not.toThrow();
    await expect(pending).rejects.toThrow('adjust threw');
    // Adjustments are not decisions: the breaker is not moved by them.
    expect(s.store.stats()).toMatchObject({ breaker: 'closed', failures: 0 });
  });
});
