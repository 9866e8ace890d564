import { describe, expect, it } from 'vitest';
import { ALGORITHMS, algorithmFor, fixedWindow, slidingLog, slidingWindow, tokenBucket } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { SLOTS_PER_WINDOW, slotEnd, slotMs } from '../../../plugins/rate-limiter/algorithms/sliding-log.ts';
import type { Algorithm, Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { parseRate } from '../../../plugins/rate-limiter/rate.ts';
import { admitBurst, replay } from './helpers.ts';

/** 3 per 10 s. */
const RULE: Rule = { limit: 3, windowMs: 10_000 };

/** 10 tokens per 10 s. */
const TOKENS: Rule = { limit: 10, windowMs: 10_000, unit: 'tokens' };

/** Replays [time, cost] charges (each checked, charged when admitted); returns the waits and the state. */
function charges<S>(algorithm: Algorithm<S>, rule: Rule, arrivals: [number, number][], state?: S): { waits: number[]; state: S | undefined } {
  const waits: number[] = [];
  for (const [t, cost] of arrivals) {
    const wait = algorithm.check(state, t, rule, cost);
    if (wait === 0) state = algorithm.consume(state, t, rule, cost);
    waits.push(wait);
  }
  return { waits, state };
}

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

describe('sliding_window, tokens rules (the sliding log)', () => {
  it('is what the sliding window counts tokens rules with', () => {
    expect(slidingWindow.tokens).toBe(slidingLog);
    expect(algorithmFor(slidingWindow as Algorithm<unknown>, 'tokens')).toBe(slidingLog);
    expect(algorithmFor(slidingWindow as Algorithm<unknown>, 'requests')).toBe(slidingWindow);
    expect(algorithmFor(slidingWindow as Algorithm<unknown>, undefined)).toBe(slidingWindow);
    // The other two weigh costs themselves.
    expect(algorithmFor(fixedWindow as Algorithm<unknown>, 'tokens')).toBe(fixedWindow);
    expect(algorithmFor(tokenBucket as Algorithm<unknown>, 'tokens')).toBe(tokenBucket);
  });

  it('admits while the costs inside the window plus the new one fit; waits until enough old ones have left', () => {
    const { waits, state } = charges(slidingLog, TOKENS, [
      [0, 4],
      [1000, 5],
      // 9 held: 2 more need the 4 from t=0 gone (at 10 000).
      [2000, 2],
      [2000, 1],
      // 10 held: 6 more need 4 (t=0) and 5 (t=1000) gone.
      [3000, 6],
      [10_000, 4],
      [11_000, 5],
    ]);
    expect(waits).toEqual([0, 0, 8000, 0, 8000, 0, 0]);
    expect(slidingLog.standing(state, 11_000, TOKENS)).toEqual({ remaining: 0, resetMs: 10_000 });
    expect(slidingLog.standing(state, 12_000, TOKENS)).toEqual({ remaining: 1, resetMs: 9000 });
    expect(slidingLog.standing(state, 21_000, TOKENS)).toEqual({ remaining: 10, resetMs: 0 });
    expect(slidingLog.expiresAt(state!, TOKENS)).toBe(21_000);
  });

  it('drops what has left the window on every write, so the log holds one window of slots at most', () => {
    let state: number[] | undefined;
    for (let t = 0; t < 100_000; t += 500) state = slidingLog.consume(state, t, TOKENS, 1);
    // A charge every 500 ms, each in its own 200 ms slot: the 20 of the last window, and the one made
    // at 89 500, counted until its slot's end (89 600) leaves the window.
    expect(state!.length / 2).toBe(21);
    expect(state!.slice(0, 4)).toEqual([89_600, 1, 90_000, 1]);
  });

  it('cuts a window into at most 64 slots of a round length (1, 2 or 5 times a power of ten ms)', () => {
    const cases: [string, number][] = [['1/s', 20], ['1/10s', 200], ['1/m', 1000], ['1/15m', 20_000], ['1/h', 100_000], ['1/d', 2_000_000]];
    for (const [rate, slot] of cases) expect(slotMs(parseRate(rate).windowMs), rate).toBe(slot);
    for (let windowMs = 1; windowMs <= 100_000; windowMs++) {
      const slot = slotMs(windowMs);
      expect(Math.ceil(windowMs / slot)).toBeLessThanOrEqual(SLOTS_PER_WINDOW);
      // The smallest such length: at most 2.5 times the 64th part (and 1 ms for windows under 64 ms).
      expect(slot).toBeLessThanOrEqual(Math.max(1, (2.5 * windowMs) / SLOTS_PER_WINDOW));
    }
    // Slots are aligned on the epoch, and a charge on a slot's end is counted at its own time.
    expect([0, 1, 150, 200, 201].map((t) => slotEnd(t, TOKENS.windowMs))).toEqual([0, 200, 200, 200, 400]);
  });

  it('counts each charge at the end of its slot: coalesced, and never leaving the window earlier than itself', () => {
    const { waits, state } = charges(slidingLog, TOKENS, [
      [150, 4],
      [199, 3],
      [201, 2],
      // 9 held: 5 more need the 200 ms slot (7) gone, at 10 200 (an exact log: the charge of 150, at 10 150).
      [1000, 5],
    ]);
    expect(state).toEqual([200, 7, 400, 2]);
    expect(waits).toEqual([0, 0, 0, 9200]);
    expect(slidingLog.check(state, 10_150, TOKENS, 5)).toBe(50);
    expect(slidingLog.check(state, 10_199, TOKENS, 5)).toBe(1);
    expect(slidingLog.check(state, 10_200, TOKENS, 5)).toBe(0);
    expect(slidingLog.standing(state, 1000, TOKENS)).toEqual({ remaining: 1, resetMs: 9400 });
    expect(slidingLog.standing(state, 10_200, TOKENS)).toEqual({ remaining: 8, resetMs: 200 });
    expect(slidingLog.expiresAt(state!, TOKENS)).toBe(10_400);
  });

  it('holds at most one window of slots whatever the budget: 100,000 one-token charges in a day, 45 slots', () => {
    const daily: Rule = { limit: 1_000_000, windowMs: 86_400_000, unit: 'tokens' };
    const t0 = 1_800_000_000_000;
    let state: number[] | undefined;
    // One charge every 864 ms: 100,000 spread over one window (an exact log would hold 100,000 entries).
    for (let i = 0; i < 100_000; i++) state = slidingLog.consume(state, t0 + i * 864, daily, 1);
    // Slots of 2,000 s: 43.2 to a day, so 45 with the first and the last partly inside.
    expect(state!.length / 2).toBe(45);
    expect(state!.length / 2).toBeLessThanOrEqual(SLOTS_PER_WINDOW + 1);
    const last = t0 + 99_999 * 864;
    expect(slidingLog.standing(state, last, daily).remaining).toBe(900_000);
    expect(slidingLog.check(state, last, daily, 900_000)).toBe(0);
    expect(slidingLog.check(state, last, daily, 900_001)).toBe(86_400_000 - 99_999 * 864);
    // And it stays bounded window after window.
    let most = 0;
    for (let i = 100_000; i < 300_000; i++) {
      state = slidingLog.consume(state, t0 + i * 864, daily, 1);
      most = Math.max(most, state.length / 2);
    }
    expect(most).toBe(45);
  });

  it('adjust: a commit changes the entry, a refund removes it, a charge gone from the window is not refunded', () => {
    let { state } = charges(slidingLog, TOKENS, [
      [0, 4],
      [1000, 3],
    ]);
    // Commit higher: the entry from t=0 now weighs 6 (and still leaves at 10 000).
    state = slidingLog.adjust(state, 2000, TOKENS, 0, 4, 2);
    expect(state).toEqual([0, 6, 1000, 3]);
    // Commit lower, then a full refund.
    state = slidingLog.adjust(state, 2000, TOKENS, 1000, 3, -2);
    expect(state).toEqual([0, 6, 1000, 1]);
    state = slidingLog.adjust(state, 2000, TOKENS, 1000, 1, -1);
    expect(state).toEqual([0, 6]);
    // Past the window: a refund finds nothing (and the log is empty: nothing left to keep).
    expect(slidingLog.adjust(state, 10_000, TOKENS, 0, 6, -6)).toBeUndefined();
    // More spent on a charge that has left the window (or a key that is gone): counted now.
    expect(slidingLog.adjust([0, 6], 10_000, TOKENS, 0, 6, 3)).toEqual([10_000, 3]);
    expect(slidingLog.adjust(undefined, 10_000, TOKENS, 0, 6, 3)).toEqual([10_000, 3]);
  });

  it('adjust changes the slot its charge went into, for as long as that slot is inside the window', () => {
    let { state } = charges(slidingLog, TOKENS, [
      [0, 2],
      [0, 1],
      [150, 4],
      [199, 3],
    ]);
    expect(state).toEqual([0, 3, 200, 7]);
    // One of two charges of one slot refunded: the other stays.
    expect(slidingLog.adjust(state, 1000, TOKENS, 0, 1, -1)).toEqual([0, 2, 200, 7]);
    // The charge of 150 counts until its slot leaves, at 10 200 (not 10 150), and is refunded until then.
    state = slidingLog.adjust(state, 10_170, TOKENS, 150, 4, -4);
    expect(state).toEqual([200, 3]);
    expect(slidingLog.adjust(state, 10_200, TOKENS, 199, 3, -3)).toBeUndefined();
  });

  it('a debt is waited out', () => {
    let { state } = charges(slidingLog, TOKENS, [[0, 2]]);
    state = slidingLog.adjust(state, 1000, TOKENS, 0, 2, 13);
    expect(slidingLog.standing(state, 1000, TOKENS)).toEqual({ remaining: 0, resetMs: 9000 });
    expect(slidingLog.check(state, 1000, TOKENS, 1)).toBe(9000);
    expect(slidingLog.check(state, 10_000, TOKENS, 10)).toBe(0);
  });
});

describe('costs and adjustments', () => {
  it('fixed_window: a cost adds to the window count; adjustments count in the charge\'s window only', () => {
    const { waits, state } = charges(fixedWindow, TOKENS, [
      [10_000, 4],
      [12_000, 7],
      [12_000, 6],
    ]);
    expect(waits).toEqual([0, 8000, 0]);
    expect(fixedWindow.standing(state, 12_000, TOKENS)).toEqual({ remaining: 0, resetMs: 8000 });
    // Refund the 6: back to 4; a refund to nothing leaves nothing.
    expect(fixedWindow.adjust({ ...state! }, 13_000, TOKENS, 12_000, 6, -6)).toEqual({ window: 1, count: 4 });
    expect(fixedWindow.adjust({ window: 1, count: 4 }, 13_000, TOKENS, 10_000, 4, -4)).toBeUndefined();
    // The window has rolled: a refund does nothing; more spent goes to the current window.
    expect(fixedWindow.adjust({ window: 1, count: 10 }, 20_000, TOKENS, 12_000, 6, -6)).toEqual({ window: 1, count: 10 });
    expect(fixedWindow.adjust({ window: 1, count: 10 }, 20_000, TOKENS, 12_000, 6, 5)).toEqual({ window: 2, count: 5 });
    // A debt: remaining never shows below 0, and the window is waited out.
    const debt = fixedWindow.adjust({ window: 1, count: 10 }, 13_000, TOKENS, 12_000, 6, 5);
    expect(fixedWindow.standing(debt, 13_000, TOKENS)).toEqual({ remaining: 0, resetMs: 7000 });
    expect(fixedWindow.check(debt, 13_000, TOKENS, 1)).toBe(7000);
  });

  it('token_bucket: a cost moves the TAT cost intervals; a refund moves it back, never before now', () => {
    // 10 tokens per 10 s: one every second.
    const { waits, state } = charges(tokenBucket, TOKENS, [
      [0, 4],
      [0, 7],
      [1000, 7],
    ]);
    expect(waits).toEqual([0, 1000, 0]);
    expect(state).toBe(11_000);
    expect(tokenBucket.standing(state, 1000, TOKENS)).toEqual({ remaining: 0, resetMs: 10_000 });
    expect(tokenBucket.adjust(state, 2000, TOKENS, 1000, 7, -7)).toBe(4000);
    // What has refilled meanwhile is not given twice: the TAT stops at now.
    expect(tokenBucket.adjust(4000, 3500, TOKENS, 0, 4, -4)).toBeUndefined();
    expect(tokenBucket.adjust(undefined, 3500, TOKENS, 0, 4, -4)).toBeUndefined();
    // More spent: pushed on from now (or from the TAT when ahead), beyond the window if need be.
    expect(tokenBucket.adjust(undefined, 3500, TOKENS, 0, 4, 3)).toBe(6500);
    expect(tokenBucket.adjust(11_000, 2000, TOKENS, 1000, 7, 5)).toBe(16_000);
    expect(tokenBucket.check(16_000, 2000, TOKENS, 1)).toBe(5000);
  });

  it('sliding_window (requests): a refund takes its time out of the ring, if still there', () => {
    // 3 per 10 s: ring [1000, 2000, 3000], full.
    const { state } = replay(slidingWindow, RULE, [1000, 2000, 3000]);
    const refunded = slidingWindow.adjust(state, 3500, RULE, 2000, 1, -1);
    expect(refunded).toEqual({ times: [1000, 3000], start: 0 });
    expect(slidingWindow.check(refunded, 3500, RULE)).toBe(0);
    // Grows back to a full ring, in order.
    const refilled = slidingWindow.consume(refunded, 4000, RULE);
    expect(refilled).toEqual({ times: [1000, 3000, 4000], start: 0 });
    expect(slidingWindow.check(refilled, 4000, RULE)).toBe(7000);
    // A time pushed out of the ring by later admissions: nothing to take back.
    const wrapped = replay(slidingWindow, RULE, [0, 1000, 2000, 10_000, 11_000]).state!;
    expect(wrapped.start).not.toBe(0);
    expect(slidingWindow.adjust(wrapped, 11_000, RULE, 0, 1, -1)).toEqual(wrapped);
    // The ring's last time refunded while it had wrapped: the rest is kept, oldest first.
    expect(slidingWindow.adjust(replay(slidingWindow, RULE, [0, 1000, 2000, 10_000, 11_000]).state, 11_000, RULE, 10_000, 1, -1)).toEqual({
      times: [2000, 11_000],
      start: 0,
    });
    // The only time refunded: nothing left.
    expect(slidingWindow.adjust(replay(slidingWindow, RULE, [5]).state, 6, RULE, 5, 1, -1)).toBeUndefined();
    // Admitted after all: recorded now.
    expect(slidingWindow.adjust(undefined, 7, RULE, 5, 1, 1)).toEqual({ times: [7], start: 0 });
  });
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
