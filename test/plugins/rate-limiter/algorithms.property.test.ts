import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixedWindow, slidingLog, slidingWindow, tokenBucket } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { slotEnd, slotMs } from '../../../plugins/rate-limiter/algorithms/sliding-log.ts';
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

/** What counts tokens rules under each configured algorithm. */
const TOKEN_ALGORITHMS: [string, Algorithm<unknown>][] = [
  ['sliding_window (the sliding log)', slidingLog as Algorithm<unknown>],
  ['fixed_window', fixedWindow as Algorithm<unknown>],
  ['token_bucket', tokenBucket as Algorithm<unknown>],
];

interface CostScenario {
  rule: Rule;
  /** Non-decreasing integer times, each with a cost no greater than the limit. */
  arrivals: { t: number; cost: number }[];
}

/** Like `scenario`, for a tokens rule (limit 1..60) whose requests each cost 1..limit. */
const costScenario: fc.Arbitrary<CostScenario> = fc
  .record({ limit: fc.integer({ min: 1, max: 60 }), windowMs: fc.integer({ min: 1, max: 10_000 }) })
  .chain((r) => {
    const rule: Rule = { ...r, unit: 'tokens' };
    const interval = Math.max(1, Math.ceil(rule.windowMs / rule.limit));
    const gap = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 * interval }), fc.integer({ min: 0, max: 2 * rule.windowMs }));
    const cost = fc.oneof(fc.integer({ min: 1, max: Math.max(1, Math.ceil(rule.limit / 4)) }), fc.integer({ min: 1, max: rule.limit }));
    return fc.record({
      rule: fc.constant(rule),
      start: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 })),
      steps: fc.array(fc.record({ gap, cost }), { minLength: 1, maxLength: 60 }),
    });
  })
  .map(({ rule, start, steps }) => {
    let t = start;
    return { rule, arrivals: steps.map(({ gap, cost }) => ({ t: (t += gap), cost })) };
  });

/** Replays charges (checked, charged when admitted); returns each wait and the final state. */
function replayCosts(algorithm: Algorithm<unknown>, rule: Rule, arrivals: readonly { t: number; cost: number }[]) {
  let state: unknown;
  const waits: number[] = [];
  for (const { t, cost } of arrivals) {
    const wait = algorithm.check(state, t, rule, cost);
    if (wait === 0) state = algorithm.consume(state, t, rule, cost);
    waits.push(wait);
  }
  return { state, waits };
}

describe('sliding_window, tokens rules: exact on slot times, never above the limit on real ones', () => {
  /** Random charges, each possibly adjusted down later (a smaller actual count, or a refund). */
  const withRefunds = costScenario.chain((s) =>
    fc.record({
      scenario: fc.constant(s),
      adjustments: fc.array(fc.record({ after: fc.nat(), pick: fc.nat(), keep: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 30 }),
    }),
  );

  it('never holds more than the limit in any half-open window, and refuses only when the cost does not fit', () => {
    let refusals = 0;
    fc.assert(
      fc.property(withRefunds, ({ scenario: { rule, arrivals }, adjustments }) => {
        let state: number[] | undefined;
        const admitted: { t: number; cost: number; charged: number; adjusted: boolean }[] = [];
        const { windowMs } = rule;
        const sum = (charges: typeof admitted) => charges.reduce((total, a) => total + a.cost, 0);
        /** What the log counts at t: each charge until the end of its slot has left the window. */
        const held = (t: number) => sum(admitted.filter((a) => slotEnd(a.t, windowMs) > t - windowMs));
        /** The charges made in the span of `span` ms ending at t, by their own times. */
        const madeWithin = (t: number, span: number) => sum(admitted.filter((a) => a.t > t - span && a.t <= t));
        arrivals.forEach(({ t, cost }, i) => {
          const wait = slidingLog.check(state, t, rule, cost);
          expect(wait === 0).toBe(held(t) + cost <= rule.limit);
          // A refusal is at most one slot stricter than an exact log: what was charged in the window
          // and the slot before it leaves no room.
          if (wait > 0) expect(madeWithin(t, windowMs + slotMs(windowMs)) + cost).toBeGreaterThan(rule.limit);
          if (wait === 0) {
            state = slidingLog.consume(state, t, rule, cost);
            admitted.push({ t, cost, charged: cost, adjusted: false });
          } else {
            refusals++;
          }
          // Adjustments scheduled after this arrival (at its time) shrink or refund earlier charges.
          for (const { pick, keep } of adjustments.filter((a) => a.after % arrivals.length === i)) {
            const open = admitted.filter((a) => !a.adjusted);
            if (open.length === 0) break;
            const charge = open[pick % open.length]!;
            charge.adjusted = true;
            const delta = Math.floor(charge.charged * keep) - charge.charged;
            if (delta === 0) continue;
            state = slidingLog.adjust(state, t, rule, charge.t, charge.charged, delta);
            if (slotEnd(charge.t, windowMs) > t - windowMs) charge.cost += delta;
          }
          expect(held(t)).toBeLessThanOrEqual(rule.limit);
          // The guarantee, by the charges' own times: the window ending now holds at most the limit.
          expect(madeWithin(t, windowMs)).toBeLessThanOrEqual(rule.limit);
          expect(slidingLog.standing(state, t, rule).remaining).toBe(rule.limit - held(t));
        });
      }),
      RUNS,
    );
    expect(refusals).toBeGreaterThan(100);
  });
});

describe.each(TOKEN_ALGORITHMS)('%s, tokens rules', (_name, algorithm) => {
  it('after a refusal with wait w, the same cost at now + w is admitted and at now + w - 1 is not', () => {
    let refusals = 0;
    fc.assert(
      fc.property(costScenario, ({ rule, arrivals }) => {
        let state: unknown;
        for (const { t, cost } of arrivals) {
          const wait = algorithm.check(state, t, rule, cost);
          if (wait === 0) {
            state = algorithm.consume(state, t, rule, cost);
            continue;
          }
          refusals++;
          expect(Number.isInteger(wait)).toBe(true);
          expect(algorithm.check(state, t + wait, rule, cost)).toBe(0);
          expect(algorithm.check(state, t + wait - 1, rule, cost)).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
    expect(refusals).toBeGreaterThan(100);
  });

  it('standing().remaining is the largest cost admitted right now', () => {
    fc.assert(
      fc.property(costScenario, fc.integer({ min: 0, max: 20_000 }), ({ rule, arrivals }, pause) => {
        const { state } = replayCosts(algorithm, rule, arrivals);
        const last = arrivals[arrivals.length - 1]!.t;
        for (const t of [last, last + pause]) {
          const { remaining } = algorithm.standing(state, t, rule);
          if (remaining > 0) expect(algorithm.check(state, t, rule, remaining)).toBe(0);
          if (remaining < rule.limit) expect(algorithm.check(state, t, rule, remaining + 1)).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
  });

  it('after waiting standing().resetMs the full limit is available again', () => {
    fc.assert(
      fc.property(costScenario, ({ rule, arrivals }) => {
        const { state } = replayCosts(algorithm, rule, arrivals);
        const now = arrivals[arrivals.length - 1]!.t;
        const { resetMs } = algorithm.standing(state, now, rule);
        expect(algorithm.standing(state, now + resetMs, rule).remaining).toBe(rule.limit);
        expect(algorithm.check(state, now + resetMs, rule, rule.limit)).toBe(0);
      }),
      RUNS,
    );
  });

  it('from expiresAt on, the state behaves exactly like no state at all', () => {
    fc.assert(
      fc.property(costScenario, ({ rule, arrivals }) => {
        const { state } = replayCosts(algorithm, rule, arrivals);
        const expiresAt = algorithm.expiresAt(state, rule);
        for (const t of [expiresAt, Math.ceil(expiresAt)]) {
          expect(algorithm.standing(state, t, rule)).toEqual(algorithm.standing(undefined, t, rule));
          expect(algorithm.check(state, t, rule, rule.limit)).toBe(0);
        }
      }),
      RUNS,
    );
  });
});

describe.each([
  ...TOKEN_ALGORITHMS.map(([name, algorithm]) => [`${name}, tokens rules`, algorithm, true] as const),
  ...ALGORITHMS.map(([name, algorithm]) => [`${name}, requests rules`, algorithm, false] as const),
])('%s: a refund', (_name, algorithm, tokens) => {
  it('of the charge just made leaves the state standing and deciding as before it', () => {
    let refunds = 0;
    fc.assert(
      fc.property(costScenario, fc.integer({ min: 1, max: 60 }), ({ rule: r, arrivals }, extra) => {
        const rule: Rule = tokens ? r : { limit: r.limit, windowMs: r.windowMs };
        const steps = tokens ? arrivals : arrivals.map(({ t }) => ({ t, cost: 1 }));
        const now = steps[steps.length - 1]!.t;
        const before = replayCosts(algorithm, rule, steps).state;
        // A cost that fits, when anything does.
        const cost = tokens ? Math.max(1, Math.min(extra, algorithm.standing(before, now, rule).remaining)) : 1;
        let state = replayCosts(algorithm, rule, steps).state;
        // Standing and decisions for every cost, as they were, and after a charge and its refund.
        const look = (s: unknown, t: number) => ({
          standing: algorithm.standing(s, t, rule),
          waits: Array.from({ length: rule.limit }, (_, i) => algorithm.check(s, t, rule, i + 1)),
        });
        if (algorithm.check(state, now, rule, cost) !== 0) return;
        state = algorithm.consume(state, now, rule, cost);
        state = algorithm.adjust(state, now, rule, now, cost, -cost);
        refunds++;
        for (const t of [now, now + 1, now + rule.windowMs / 2, now + rule.windowMs]) expect(look(state, t)).toEqual(look(before, t));
      }),
      RUNS,
    );
    expect(refunds).toBeGreaterThan(RUNS.numRuns / 2);
  });
});
