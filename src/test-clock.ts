import { readFileSync } from 'node:fs';
import { systemClock, type Clock } from './clock.ts';

/**
 * The environment variable that gives a gateway process a test clock: the path of a file holding the
 * time. For end-to-end tests only (they cannot inject a ManualClock into another process); main.ts
 * refuses it under NODE_ENV=production and logs a warning whenever it is set.
 */
export const TEST_CLOCK_ENV = 'FLOODGATE_TEST_CLOCK_FILE';

/** An instant as the file says it: ISO 8601 ("2026-12-31T22:59:00Z") or epoch milliseconds. */
function parseInstant(text: string): number | undefined {
  const trimmed = text.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) : Date.parse(trimmed);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * A clock set from a file, so a test can move a running gateway's time (to the last minute of a
 * month, then past it). The time runs on in real time from the instant the file holds, and jumps
 * when the file's content changes; the file is read on every now(), so the next request after a
 * write sees the new time (write it atomically: a temporary file, then a rename). A file that cannot
 * be read or parsed later leaves the time running from the last instant read.
 */
export class FileClock implements Clock {
  private content: string;
  private instant: number;
  private anchor: number;

  constructor(
    readonly path: string,
    private readonly real: Clock = systemClock,
  ) {
    this.content = readFileSync(path, 'utf8');
    const instant = parseInstant(this.content);
    if (instant === undefined) throw new Error(`${TEST_CLOCK_ENV}: ${path} holds no time (expected an ISO 8601 instant or epoch milliseconds)`);
    this.instant = instant;
    this.anchor = real.now();
  }

  now(): number {
    let content: string | undefined;
    try {
      content = readFileSync(this.path, 'utf8');
    } catch {
      content = undefined;
    }
    if (content !== undefined && content !== this.content) {
      const instant = parseInstant(content);
      if (instant !== undefined) {
        this.content = content;
        this.instant = instant;
        this.anchor = this.real.now();
      }
    }
    return this.instant + (this.real.now() - this.anchor);
  }
}

/**
 * The test clock the environment asks for, or undefined (the system clock) when it asks for none.
 * Throws when it is asked for under NODE_ENV=production, or when its file holds no time.
 */
export function testClockFromEnv(env: NodeJS.ProcessEnv): FileClock | undefined {
  const path = env[TEST_CLOCK_ENV];
  if (path === undefined || path === '') return undefined;
  if (env.NODE_ENV === 'production') throw new Error(`${TEST_CLOCK_ENV} is set, and a test clock never runs with NODE_ENV=production`);
  return new FileClock(path);
}
