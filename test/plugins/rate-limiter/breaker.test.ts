import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../../plugins/rate-limiter/breaker.ts';

function breaker(options: { failureThreshold?: number; probeIntervalMs?: number } = {}) {
  const changes: [BreakerState, BreakerState][] = [];
  const b = new CircuitBreaker({
    failureThreshold: options.failureThreshold ?? 3,
    probeIntervalMs: options.probeIntervalMs ?? 1_000,
    onChange: (state, previous) => changes.push([state, previous]),
  });
  return { b, changes };
}

describe('CircuitBreaker', () => {
  it('starts closed and lets every request through', () => {
    const { b, changes } = breaker();
    expect(b.state).toBe('closed');
    for (let t = 0; t < 100; t++) expect(b.allow(t)).toBe(true);
    expect(changes).toEqual([]);
  });

  it('opens on the third consecutive failure, not before', () => {
    const { b, changes } = breaker();
    b.failure(0);
    b.failure(1);
    expect(b.state).toBe('closed');
    expect(b.allow(2)).toBe(true);
    b.failure(2);
    expect(b.state).toBe('open');
    expect(b.allow(3)).toBe(false);
    expect(changes).toEqual([['open', 'closed']]);
  });

  it('does not open on failures that a success interrupts', () => {
    const { b, changes } = breaker();
    for (let i = 0; i < 10; i++) {
      b.failure(i);
      b.failure(i);
      b.success();
    }
    expect(b.state).toBe('closed');
    expect(changes).toEqual([]);
  });

  it('while open, refuses every request until the probe is due, then lets exactly one through', () => {
    const { b } = breaker({ probeIntervalMs: 1_000 });
    for (let i = 0; i < 3; i++) b.failure(5_000);
    let allowed = 0;
    for (let t = 5_000; t < 6_000; t += 10) if (b.allow(t)) allowed++;
    expect(allowed).toBe(0);
    // The probe: one request at 6000, none of the hundreds after it while it is out.
    expect(b.allow(6_000)).toBe(true);
    expect(b.state).toBe('half_open');
    for (let t = 6_000; t < 7_000; t += 5) expect(b.allow(t)).toBe(false);
  });

  it('closes when the probe succeeds; everything goes through again', () => {
    const { b, changes } = breaker();
    for (let i = 0; i < 3; i++) b.failure(0);
    expect(b.allow(1_000)).toBe(true);
    b.success();
    expect(b.state).toBe('closed');
    for (let t = 1_000; t < 1_010; t++) expect(b.allow(t)).toBe(true);
    expect(changes).toEqual([
      ['open', 'closed'],
      ['half_open', 'open'],
      ['closed', 'half_open'],
    ]);
  });

  it('reopens when the probe fails, and probes again one interval after that failure', () => {
    const { b, changes } = breaker({ probeIntervalMs: 1_000 });
    for (let i = 0; i < 3; i++) b.failure(0);
    expect(b.allow(1_000)).toBe(true);
    // The probe took 40 ms to fail.
    b.failure(1_040);
    expect(b.state).toBe('open');
    expect(b.allow(2_000)).toBe(false);
    expect(b.allow(2_039)).toBe(false);
    expect(b.allow(2_040)).toBe(true);
    expect(changes).toEqual([
      ['open', 'closed'],
      ['half_open', 'open'],
      ['open', 'half_open'],
      ['half_open', 'open'],
    ]);
  });

  it('one probe per interval while the backend stays down: 10 s of requests every 10 ms make 10 probes', () => {
    const { b, changes } = breaker({ probeIntervalMs: 1_000 });
    for (let i = 0; i < 3; i++) b.failure(0);
    let probes = 0;
    for (let t = 0; t < 10_000; t += 10) {
      if (b.allow(t)) {
        probes++;
        b.failure(t + 5);
      }
    }
    expect(probes).toBe(9);
    // 1 opening + 2 per probe: a change per transition, not per request (1000 requests).
    expect(changes).toHaveLength(1 + 2 * 9);
  });

  it('a late failure of a request sent before the breaker opened does not push the probe back', () => {
    const { b, changes } = breaker({ probeIntervalMs: 1_000 });
    for (let i = 0; i < 3; i++) b.failure(0);
    b.failure(900);
    expect(b.allow(1_000)).toBe(true);
    expect(changes).toHaveLength(2);
  });

  it('trip() opens at once and probes one interval later; tripping again notifies nobody twice', () => {
    const { b, changes } = breaker({ probeIntervalMs: 500 });
    b.trip(100);
    expect(b.state).toBe('open');
    expect(b.allow(599)).toBe(false);
    b.trip(200);
    expect(changes).toEqual([['open', 'closed']]);
    expect(b.allow(699)).toBe(false);
    expect(b.allow(700)).toBe(true);
    b.success();
    expect(b.state).toBe('closed');
  });

  it('honours a custom threshold', () => {
    const { b } = breaker({ failureThreshold: 1 });
    b.failure(0);
    expect(b.state).toBe('open');
  });
});

describe('CircuitBreaker: a probe that never returns', () => {
  it('sends another probe one interval later instead of waiting for ever', () => {
    const { b } = breaker({ probeIntervalMs: 1_000 });
    for (let i = 0; i < 3; i++) b.failure(0);
    expect(b.allow(1_000)).toBe(true); // the probe, which hangs
    expect(b.state).toBe('half_open');
    expect(b.allow(1_999)).toBe(false);
    expect(b.allow(2_000)).toBe(true); // a second probe
    b.success();
    expect(b.state).toBe('closed');
  });
});
