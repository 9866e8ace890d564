import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixedWindow, slidingWindow, tokenBucket } from '../../../plugins/rate-limiter/algorithms/index.ts';
import type { Algorithm, AlgorithmName, Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { admitBurst, replay } from './helpers.ts';

const ALGORITHMS: [AlgorithmName, Algorithm<unknown>][] = [
  ['sliding_window', slidingWindow as Algorithm<unknown>],
  ['fixed_window', fixedWindow as Algorithm<unknown>],
  ['token_bucket', tokenBucket as Algorithm<unknown>],
];

interface Scenario {
  rule: Rule;
  /** Non-decreasing integer request times. */
  arrivals: number[];
}

/**
 * A random limit (1..20), window (1..10000 ms) and arrival sequence: non-decreasing integer times that
 * mix simultaneous requests, requests about one emission interval apart and long pauses, so that
 * every algorithm both admits and refuses.
 */
const scenario: fc.Arbitrary<Scenario> = fc
  .record({ limit: fc.integer({ min: 1, max: 20 }), windowMs: fc.integer({ min: 1, max: 10_000 }) })
  .chain((rule) => {
    const interval = Math.max(1, Math.ceil(rule.windowMs / rule.limit));
    const gap = fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: interval }),
      fc.integer({ min: 0, max: 2 * rule.windowMs }),
    );
    return fc.record({
      rule: fc.constant(rule),
      // Small times, and real epoch-millisecond times (what the system clock gives), where a double
      // resolves only ~0.0002 ms.
      start: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 })),
      gaps: fc.array(gap, { minLength: 1, maxLength: 60 }),
    });
  })
  .map(({ rule, start, gaps }) => {
    const arrivals: number[] = [];
    let t = start;
    for (const g of gaps) arrivals.push((t += g));
    return { rule, arrivals };
  });

const RUNS = { numRuns: 400 };

describe('sliding_window, exact', () => {
  it('never admits more than the limit in any half-open window (t - W, t]', () => {
    fc.assert(
      fc.property(scenario, ({ rule, arrivals }) => {
        const { outcomes } = replay(slidingWindow as Algorithm<unknown>, rule, arrivals);
        const admitted = outcomes.filter((o) => o.wait === 0).map((o) => o.t);
        for (const t of admitted) {
          const inWindow = admitted.filter((a) => a > t - rule.windowMs && a <= t).length;
          expect(inWindow).toBeLessThanOrEqual(rule.limit);
        }
      }),
      RUNS,
    );
  });

  it('refuses only when the limit is already reached in (t - W, t] (never stricter than the rule)', () => {
    fc.assert(
      fc.property(scenario, ({ rule, arrivals }) => {
        const { outcomes } = replay(slidingWindow as Algorithm<unknown>, rule, arrivals);
        const admittedBefore: number[] = [];
        for (const { t, wait } of outcomes) {
          const inWindow = admittedBefore.filter((a) => a > t - rule.windowMs).length;
          expect(wait === 0).toBe(inWindow < rule.limit);
          if (wait === 0) admittedBefore.push(t);
        }
      }),
      RUNS,
    );
  });

  it('a scenario generator that really produces refusals (guards the properties above against vacuity)', () => {
    let refusals = 0;
    fc.assert(
      fc.property(scenario, ({ rule, arrivals }) => {
        refusals += replay(slidingWindow as Algorithm<unknown>, rule, arrivals).outcomes.filter((o) => o.wait > 0).length;
      }),
      { numRuns: 200, seed: 42 },
    );
    expect(refusals).toBeGreaterThan(100);
  });
});

describe.each(ALGORITHMS)('%s', (name, algorithm) => {
  it('after a refusal with wait w, a request at now + w is admitted and one at now + w - 1 is not', () => {
    let refusalsSeen = 0;
    fc.assert(
      fc.property(scenario, ({ rule, arrivals }) => {
        let state: unknown;
        for (const t of arrivals) {
          const wait = algorithm.check(state, t, rule);
          if (wait === 0) {
            state = algorithm.consume(state, t, rule);
            continue;
          }
          refusalsSeen++;
          expect(wait).toBeGreaterThan(0);
          expect(Number.isInteger(wait)).toBe(true);
          expect(algorithm.check(state, t + wait, rule)).toBe(0);
          expect(algorithm.check(state, t + wait - 1, rule)).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
    expect(refusalsSeen).toBeGreaterThan(0);
  });

  it('standing().remaining is the number of requests that would be admitted right now, one after another', () => {
    fc.assert(
      fc.property(scenario, fc.integer({ min: 0, max: 20_000 }), ({ rule, arrivals }, pause) => {
        const last = arrivals[arrivals.length - 1]!;
        // Probe right after every arrival, and once more after a pause following the last one.
        const probes = [...arrivals.map((t, i) => ({ t, prefix: i + 1 })), { t: last + pause, prefix: arrivals.length }];
        for (const { t, prefix } of probes) {
          const { state } = replay(algorithm, rule, arrivals.slice(0, prefix));
          const { remaining } = algorithm.standing(state, t, rule);
          // consume mutates the state, so count on a rebuilt copy.
          const copy = replay(algorithm, rule, arrivals.slice(0, prefix)).state;
          expect(remaining).toBe(admitBurst(algorithm, rule, copy, t, rule.limit + 1));
        }
      }),
      RUNS,
    );
  });

  it('after waiting standing().resetMs the full limit is available again, and not a millisecond earlier', () => {
    fc.assert(
      fc.property(scenario, ({ rule, arrivals }) => {
        const { state } = replay(algorithm, rule, arrivals);
        const now = arrivals[arrivals.length - 1]!;
        const { resetMs, remaining } = algorithm.standing(state, now, rule);
        expect(resetMs).toBeGreaterThanOrEqual(0);
        expect(Number.isInteger(resetMs)).toBe(true);
        expect(algorithm.standing(state, now + resetMs, rule).remaining).toBe(rule.limit);
        if (resetMs === 0) {
          expect(remaining).toBe(rule.limit);
        } else {
          expect(remaining).toBeLessThan(rule.limit);
          expect(algorithm.standing(state, now + resetMs - 1, rule).remaining).toBeLessThan(rule.limit);
        }
      }),
      RUNS,
    );
  });

  it('from expiresAt on, the state behaves exactly like no state at all', () => {
    fc.assert(
      fc.property(scenario, fc.integer({ min: 0, max: 50_000 }), ({ rule, arrivals }, later) => {
        const { state } = replay(algorithm, rule, arrivals);
        expect(state).toBeDefined();
        const expiresAt = algorithm.expiresAt(state, rule);
        // Memory is released about one window after the last admission (within float rounding).
        expect(expiresAt).toBeLessThanOrEqual(arrivals[arrivals.length - 1]! + rule.windowMs + 1);
        for (const t of [expiresAt, Math.ceil(expiresAt), Math.ceil(expiresAt) + later]) {
          expect(algorithm.check(state, t, rule)).toBe(algorithm.check(undefined, t, rule));
          expect(algorithm.standing(state, t, rule)).toEqual(algorithm.standing(undefined, t, rule));
          expect(algorithm.check(state, t, rule)).toBe(0);
        }
      }),
      RUNS,
    );
  });
});
