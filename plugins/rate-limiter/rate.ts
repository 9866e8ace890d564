/** A parsed rate: at most `limit` requests per `windowMs`. */
export interface Rate {
  limit: number;
  windowMs: number;
  /** As written in config, e.g. "30/m"; shown to operators. */
  source: string;
}

const UNIT_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, second: 1_000, seconds: 1_000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

export const RATE = /^\s*(\d+)\s*\/\s*(\d+)?\s*([a-z]+)\s*$/i;
const MAX_LIMIT = 1_000_000_000;
const MAX_WINDOW_MS = 366 * 86_400_000;

export class RateSyntaxError extends Error {}

/** Parses "30/m", "10/s", "500/h", "2000/d" or "100/15m"; throws a RateSyntaxError saying what is wrong. */
export function parseRate(text: string): Rate {
  const match = RATE.exec(text);
  const hint = 'write <count>/<window> with window s, m, h or d (optionally with a multiple), e.g. "30/m" or "100/15m"';
  if (!match) throw new RateSyntaxError(`${JSON.stringify(text)} is not a rate; ${hint}`);
  const [, count, multiple, unit] = match as unknown as [string, string, string | undefined, string];
  const unitMs = UNIT_MS[unit.toLowerCase()];
  if (unitMs === undefined) throw new RateSyntaxError(`${JSON.stringify(text)} has unknown unit "${unit}"; ${hint}`);
  const limit = Number(count);
  const times = multiple === undefined ? 1 : Number(multiple);
  if (limit < 1 || limit > MAX_LIMIT) {
    throw new RateSyntaxError(`${JSON.stringify(text)}: the count must be between 1 and ${MAX_LIMIT}`);
  }
  if (times < 1) throw new RateSyntaxError(`${JSON.stringify(text)}: the window multiple must be at least 1`);
  const windowMs = times * unitMs;
  if (windowMs > MAX_WINDOW_MS) throw new RateSyntaxError(`${JSON.stringify(text)}: the window must be at most 366 days`);
  return { limit, windowMs, source: text.trim() };
}

const UNIT_WORDS: readonly [number, string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
];

/** "minute", "15 minutes": a window as a reply names it. */
export function describeWindow(windowMs: number): string {
  for (const [ms, word] of UNIT_WORDS) {
    if (windowMs % ms === 0) {
      const n = windowMs / ms;
      return n === 1 ? word : `${n} ${word}s`;
    }
  }
  return `${windowMs} ms`;
}

/** "30 per minute", "100 per 15 minutes": how a rate reads in the user's reply. */
export function describeRate(rate: Rate): string {
  return `${rate.limit} per ${describeWindow(rate.windowMs)}`;
}

/** "15m", "1h", "2d": a window as rule labels show it. */
export function windowLabel(windowMs: number): string {
  for (const [ms, unit] of [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1_000, 's']] as const) {
    if (windowMs % ms === 0) return `${windowMs / ms}${unit}`;
  }
  return `${windowMs}ms`;
}

/** A setting's rates as a list, whichever form it was written in. */
export function rateList(spec: Rate | Rate[] | undefined): Rate[] {
  return spec === undefined ? [] : Array.isArray(spec) ? spec : [spec];
}
