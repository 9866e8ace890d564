import { describe, expect, it } from 'vitest';
import { KeyedThrottle } from '../../../src/util/throttle.ts';

describe('KeyedThrottle', () => {
  it('lets one call per key through per interval', () => {
    const throttle = new KeyedThrottle(100);
    expect(throttle.pass('k', 1_000, 10_000)).toBe(true);
    expect(throttle.pass('k', 1_000, 10_000)).toBe(false);
    expect(throttle.pass('k', 10_999, 10_000)).toBe(false);
    expect(throttle.pass('k', 11_000, 10_000)).toBe(true);
    expect(throttle.pass('k', 11_001, 10_000)).toBe(false);
  });

  it('counts the interval from the call that passed, not from the refused ones', () => {
    const throttle = new KeyedThrottle(100);
    expect(throttle.pass('k', 0, 100)).toBe(true);
    expect(throttle.pass('k', 99, 100)).toBe(false);
    expect(throttle.pass('k', 100, 100)).toBe(true);
  });

  it('throttles each key separately', () => {
    const throttle = new KeyedThrottle(100);
    expect(throttle.pass('a', 0, 1_000)).toBe(true);
    expect(throttle.pass('b', 0, 1_000)).toBe(true);
    expect(throttle.pass('a', 500, 1_000)).toBe(false);
    expect(throttle.pass('c', 500, 1_000)).toBe(true);
    expect(throttle.pass('b', 999, 1_000)).toBe(false);
  });

  it('passes exactly one call per interval over a long run', () => {
    const throttle = new KeyedThrottle(10);
    let passed = 0;
    // One call every 100 ms for 60 s, interval 10 s: 6 passes.
    for (let now = 0; now < 60_000; now += 100) if (throttle.pass('k', now, 10_000)) passed++;
    expect(passed).toBe(6);
  });

  it('stays within its key bound', () => {
    const throttle = new KeyedThrottle(50);
    for (let i = 0; i < 1_000; i++) expect(throttle.pass(`key-${i}`, 0, 60_000)).toBe(true);
    expect(throttle.size).toBeLessThanOrEqual(50);
  });
});
