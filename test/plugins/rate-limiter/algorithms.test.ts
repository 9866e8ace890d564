import { describe, expect, it } from 'vitest';
import { ALGORITHMS, fixedWindow, slidingWindow, tokenBucket } from '../../../plugins/rate-limiter/algorithms/index.ts';
import type { Algorithm, Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { parseRate } from '../../../plugins/rate-limiter/rate.ts';
import { admitBurst, replay } from './helpers.ts';

/** 3 per 10 s. */
const RULE: Rule = { limit: 3, windowMs: 10_000 };

/** The waits (0 = admitted) for requests at `times`, in order. */
function waits<S>(algorithm: Algorithm<S>, rule: Rule, times: number[]): number[] {
  return replay(algorithm, rule, times).outcomes.map((o) => o.wait);
}

describe('sliding_window', () => {
  it('admits three at once, refuses the fourth until the first is a full window old', () => {
    expect(waits(slidingWindow, RULE, [1000, 1000, 1000, 1000, 5000, 10_999, 11_000, 11_000, 11_000, 11_000])).toEqual([
      0, 0, 0, 10_000, 6000, 1, 0, 0, 0, 10_000,
    ]);
  });

  it('frees one slot at a time as each admission slides out of the window', () => {
    // Admitted at 0, 4000, 8000; at 9000 the oldest (0) leaves at 10000; then 4000 leaves at 14000.
    expect(waits(slidingWindow, RULE, [0, 4000, 8000, 9000, 10_000, 10_000, 13_999, 14_000])).toEqual([
      0, 0, 0, 1000, 0, 4000, 1, 0,
    ]);
  });

  it('does not admit twice the limit across a fixed-window boundary', () => {
    // Three just before the 10 s boundary, three just after: only the first three get in.
    expect(waits(slidingWindow, RULE, [9999, 9999, 9999, 10_000, 10_000, 10_000])).toEqual([0, 0, 0, 9999, 9999, 9999]);
  });

  it('keeps exact order once the ring has grown past its initial capacity and wrapped', () => {
    const rule = { limit: 10, windowMs: 1000 };
    const times = [...Array.from({ length: 10 }, (_, i) => i), 10, 1000, 1000, 1001, 1001, 1002];
    // 0..9 admitted; at 10 the oldest (0) frees at 1000; at 1000 one slot (0 left), then 1 frees at 1001...
    expect(waits(slidingWindow, rule, times)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 990, 0, 1, 0, 1, 0]);
  });

  it('reports what is left and when the full limit is back', () => {
    const { state } = replay(slidingWindow, RULE, [1000, 4000]);
    expect(slidingWindow.standing(state, 4000, RULE)).toEqual({ remaining: 1, resetMs: 10_000 });
    expect(slidingWindow.standing(state, 11_000, RULE)).toEqual({ remaining: 2, resetMs: 3000 });
    expect(slidingWindow.standing(state, 14_000, RULE)).toEqual({ remaining: 3, resetMs: 0 });
    expect(slidingWindow.standing(undefined, 0, RULE)).toEqual({ remaining: 3, resetMs: 0 });
  });

  it('expires one window after the newest admission', () => {
    const { state } = replay(slidingWindow, RULE, [1000, 4000]);
    expect(slidingWindow.expiresAt(state!, RULE)).toBe(14_000);
  });
});

describe('fixed_window', () => {
  it('admits three per epoch-aligned window and refuses the rest until the window ends', () => {
    expect(waits(fixedWindow, RULE, [10_000, 12_000, 12_000, 12_000, 19_999, 20_000])).toEqual([0, 0, 0, 8000, 1, 0]);
  });

  it('admits up to twice the limit across a window boundary, as documented', () => {
    // Three in the last millisecond of one window, three in the first of the next: all six admitted
    // within 2 ms, which a sliding window would refuse (see above).
    const outcomes = waits(fixedWindow, RULE, [19_999, 19_999, 19_999, 20_000, 20_000, 20_000, 20_000]);
    expect(outcomes).toEqual([0, 0, 0, 0, 0, 0, 10_000]);
  });

  it('reports what is left in the current window and when it ends', () => {
    const { state } = replay(fixedWindow, RULE, [12_000]);
    expect(fixedWindow.standing(state, 12_000, RULE)).toEqual({ remaining: 2, resetMs: 8000 });
    expect(fixedWindow.standing(state, 20_000, RULE)).toEqual({ remaining: 3, resetMs: 0 });
    expect(fixedWindow.expiresAt(state!, RULE)).toBe(20_000);
  });
});

describe('token_bucket', () => {
  it('admits a burst of the limit, then one request per emission interval (window / limit)', () => {
    // 3/10 s: one token every 3333.3 ms.
    expect(waits(tokenBucket, RULE, [0, 0, 0, 0, 3333, 3334, 3334, 6667, 6667, 10_000])).toEqual([
      0, 0, 0, 3334, 1, 0, 3333, 0, 3333, 0,
    ]);
  });

  it('refills completely after a quiet window', () => {
    expect(waits(tokenBucket, RULE, [0, 0, 0, 10_000, 10_000, 10_000, 10_000])).toEqual([0, 0, 0, 0, 0, 0, 3334]);
  });

  it('reports what is left and when the bucket is full again', () => {
    const { state } = replay(tokenBucket, RULE, [0]);
    expect(tokenBucket.standing(state, 0, RULE)).toEqual({ remaining: 2, resetMs: 3334 });
    expect(tokenBucket.standing(state, 3334, RULE)).toEqual({ remaining: 3, resetMs: 0 });
    expect(tokenBucket.expiresAt(state!, RULE)).toBeCloseTo(3333.33, 1);
  });

  it.each(['6/s', '9/m', '14/m', '11/h', '19/d', '30/m', '7/m'])(
    'admits the full burst of %s at real epoch-millisecond times (float error at 1.7e12 ms)',
    (text) => {
      const rule = parseRate(text);
      const now = 1_700_000_000_000;
      expect(admitBurst(tokenBucket, rule, undefined, now, rule.limit + 1)).toBe(rule.limit);
      // And standing() agrees with what a client would then get.
      const after1 = tokenBucket.consume(undefined, now, rule);
      expect(tokenBucket.standing(after1, now, rule).remaining).toBe(rule.limit - 1);
    },
  );
});

describe('ALGORITHMS', () => {
  it('maps every configurable algorithm name to its implementation', () => {
    expect(ALGORITHMS.sliding_window).toBe(slidingWindow);
    expect(ALGORITHMS.fixed_window).toBe(fixedWindow);
    expect(ALGORITHMS.token_bucket).toBe(tokenBucket);
  });

  it.each(Object.entries(ALGORITHMS))('%s: check() alone never charges a request', (_name, algorithm) => {
    const { state } = replay(algorithm, RULE, [0, 0]);
    for (let i = 0; i < 50; i++) expect(algorithm.check(state, 0, RULE)).toBe(0);
    expect(algorithm.standing(state, 0, RULE).remaining).toBe(1);
  });
});
