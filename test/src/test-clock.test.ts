import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.ts';
import { FileClock, TEST_CLOCK_ENV, testClockFromEnv } from '../../src/test-clock.ts';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'floodgate-test-clock-'));
  file = join(dir, 'now');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(text: string): void {
  writeFileSync(`${file}.next`, text);
  renameSync(`${file}.next`, file);
}

describe('the test clock a gateway process reads from a file', () => {
  it('starts at the instant the file holds, runs on in real time, and jumps when the file changes', () => {
    write('2026-12-31T22:59:00Z');
    const real = new ManualClock(1_000);
    const clock = new FileClock(file, real);
    expect(clock.now()).toBe(Date.parse('2026-12-31T22:59:00Z'));
    real.advance(1_500);
    expect(clock.now()).toBe(Date.parse('2026-12-31T22:59:01.500Z'));
    write(String(Date.parse('2026-12-31T23:00:00Z')));
    expect(clock.now()).toBe(Date.parse('2026-12-31T23:00:00Z'));
    real.advance(10);
    expect(clock.now()).toBe(Date.parse('2026-12-31T23:00:00.010Z'));
  });

  it('keeps running from the last good instant when the file goes bad or away', () => {
    write('2026-06-01T00:00:00Z');
    const real = new ManualClock(0);
    const clock = new FileClock(file, real);
    write('not a time');
    real.advance(5);
    expect(clock.now()).toBe(Date.parse('2026-06-01T00:00:00.005Z'));
    rmSync(file);
    expect(clock.now()).toBe(Date.parse('2026-06-01T00:00:00.005Z'));
  });

  it('is off unless the environment names a file, refused under NODE_ENV=production, and a file without a time is an error', () => {
    expect(testClockFromEnv({})).toBeUndefined();
    write('2026-06-01T00:00:00Z');
    expect(testClockFromEnv({ [TEST_CLOCK_ENV]: file })).toBeInstanceOf(FileClock);
    expect(() => testClockFromEnv({ [TEST_CLOCK_ENV]: file, NODE_ENV: 'production' })).toThrow('never runs with NODE_ENV=production');
    write('soon');
    expect(() => testClockFromEnv({ [TEST_CLOCK_ENV]: file })).toThrow('holds no time');
    expect(() => testClockFromEnv({ [TEST_CLOCK_ENV]: join(dir, 'missing') })).toThrow();
  });
});
