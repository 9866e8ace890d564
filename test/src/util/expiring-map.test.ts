import { describe, expect, it } from 'vitest';
import { ExpiringMap, type Expiring } from '../../../src/util/expiring-map.ts';

interface Entry extends Expiring {
  value: string;
}

const entry = (value: string, expiresAt: number): Entry => ({ value, expiresAt });

describe('ExpiringMap', () => {
  it('returns a live entry', () => {
    const map = new ExpiringMap<Entry>(10);
    map.set('a', entry('A', 100), 0);
    expect(map.get('a', 99)?.value).toBe('A');
    expect(map.get('missing', 0)).toBeUndefined();
  });

  it('does not return an entry once it has expired, and drops it', () => {
    const map = new ExpiringMap<Entry>(10);
    map.set('a', entry('A', 100), 0);
    expect(map.get('a', 100)).toBeUndefined();
    expect(map.size).toBe(0);
    // Expired means expired, even if asked about an earlier time afterwards.
    expect(map.get('a', 50)).toBeUndefined();
  });

  it('overwrites an existing key in place without growing', () => {
    const map = new ExpiringMap<Entry>(2);
    map.set('a', entry('A1', 100), 0);
    map.set('b', entry('B', 100), 0);
    map.set('a', entry('A2', 200), 0);
    expect(map.size).toBe(2);
    expect(map.get('a', 150)?.value).toBe('A2');
    expect(map.get('b', 50)?.value).toBe('B');
    expect(map.evictedLive).toBe(0);
  });

  it('sweep removes expired entries and keeps live ones', () => {
    const map = new ExpiringMap<Entry>(100);
    map.set('early', entry('1', 10), 0);
    map.set('middle', entry('2', 20), 0);
    map.set('late', entry('3', 30), 0);
    map.sweep(25, 10);
    expect(map.size).toBe(1);
    expect(map.get('late', 25)?.value).toBe('3');
  });

  it('sweep inspects at most its budget', () => {
    const map = new ExpiringMap<Entry>(100, 0);
    for (let i = 0; i < 10; i++) map.set(`k${i}`, entry('x', 5), 0);
    map.sweep(10, 3);
    expect(map.size).toBe(7);
    map.sweep(10, 3);
    expect(map.size).toBe(4);
    map.sweep(10, 100);
    expect(map.size).toBe(0);
  });

  it('sweep on an empty map does nothing', () => {
    const map = new ExpiringMap<Entry>(5);
    map.sweep(0, 10);
    expect(map.size).toBe(0);
  });

  it('inserts sweep expired entries along the way, so dead state does not pile up', () => {
    const map = new ExpiringMap<Entry>(10_000);
    for (let i = 0; i < 1000; i++) map.set(`k${i}`, entry('x', i + 1), i);
    // Each key lives 1 ms; the sweep (2 per insert) keeps pace, so at most a handful remain.
    expect(map.size).toBeLessThan(10);
  });

  it('never holds more than maxKeys, evicting the oldest live entry and counting it', () => {
    const map = new ExpiringMap<Entry>(100);
    for (let i = 0; i < 10_000; i++) {
      map.set(`user-${i}`, entry(`v${i}`, Number.MAX_SAFE_INTEGER), 0);
      expect(map.size).toBeLessThanOrEqual(100);
    }
    expect(map.size).toBe(100);
    expect(map.evictedLive).toBe(9_900);
    // The newest entries survive; the oldest were evicted.
    expect(map.get('user-9999', 0)?.value).toBe('v9999');
    expect(map.get('user-9900', 0)?.value).toBe('v9900');
    expect(map.get('user-9899', 0)).toBeUndefined();
    expect(map.get('user-0', 0)).toBeUndefined();
  });

  it('when full, drops expired entries before evicting live ones', () => {
    const map = new ExpiringMap<Entry>(100);
    // Entries live 10 ms and time moves 1 ms per insert: never more than 10 live at once.
    for (let now = 0; now < 5_000; now++) {
      map.set(`user-${now}`, entry('x', now + 10), now);
      expect(map.size).toBeLessThanOrEqual(100);
    }
    expect(map.evictedLive).toBe(0);
    expect(map.get('user-4999', 4_999)).toBeDefined();
  });

  it('when full of expired state, an insert sweeps it rather than evicting the live entry', () => {
    // No sweeping on ordinary inserts, so only the full-map path can clean up.
    const map = new ExpiringMap<Entry>(3, 0);
    map.set('live', entry('L', 1_000), 0);
    map.set('dead-1', entry('x', 5), 0);
    map.set('dead-2', entry('x', 5), 0);
    map.set('new', entry('N', 1_000), 10);
    expect(map.get('live', 10)?.value).toBe('L');
    expect(map.get('new', 10)?.value).toBe('N');
    expect(map.evictedLive).toBe(0);
    expect(map.size).toBe(2);
  });

  it('delete and clear remove entries', () => {
    const map = new ExpiringMap<Entry>(10);
    map.set('a', entry('A', 100), 0);
    map.set('b', entry('B', 100), 0);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    expect(map.get('a', 0)).toBeUndefined();
    map.clear();
    expect(map.size).toBe(0);
    expect(map.get('b', 0)).toBeUndefined();
  });

  it('keeps working after clear (the sweep cursor restarts)', () => {
    const map = new ExpiringMap<Entry>(3);
    map.set('a', entry('A', 10), 0);
    map.clear();
    for (let i = 0; i < 10; i++) map.set(`k${i}`, entry('x', 1_000), 0);
    expect(map.size).toBe(3);
    expect(map.evictedLive).toBe(7);
  });

  it.each([[0], [-1], [1.5], [Number.NaN]])('rejects maxKeys %s', (maxKeys) => {
    expect(() => new ExpiringMap<Entry>(maxKeys)).toThrow(RangeError);
  });
});
