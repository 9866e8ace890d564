/** Milliseconds since the Unix epoch. Injected everywhere time matters, so tests control it. */
export interface Clock {
  now(): number;
}

// performance.now() never goes backwards, unlike Date.now() across NTP steps; anchoring it to
// timeOrigin keeps the value comparable with wall-clock times.
const origin = performance.timeOrigin;
// Held, not looked up: the global `performance` is a lazy accessor on Node 20, which makes every
// lookup of it a getter call (about as long as the now() it precedes), on every message.
const perf = performance;
export const systemClock: Clock = { now: () => origin + perf.now() };

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private current = 0) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}
