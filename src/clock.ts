/** Milliseconds since the Unix epoch. Injected everywhere time matters, so tests control it. */
export interface Clock {
  now(): number;
}

// performance.now() never goes backwards, unlike Date.now() across NTP steps; anchoring it to
// timeOrigin keeps the value comparable with wall-clock times.
const origin = performance.timeOrigin;
export const systemClock: Clock = { now: () => origin + performance.now() };

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
