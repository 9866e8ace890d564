import type { CalendarUnit } from './calendar/periods.ts';

/** A parsed rate: at most `limit` requests per `windowMs`. */
export interface Rate {
  limit: number;
  /** The window; for a calendar window its nominal length (a day, 31 days). */
  windowMs: number;
  /** As written in config, e.g. "30/m"; shown to operators. */
  source: string;
  /** Set when the window resets on the calendar ("1000/calendar_day", "5000000/calendar_month"). */
  calendarUnit?: CalendarUnit;
}

const UNIT_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, second: 1_000, seconds: 1_000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

/** Windows that reset on the calendar, at midnight in the configured time zone (see calendar/periods.ts). */
const CALENDAR_UNITS: Record<string, { unit: CalendarUnit; nominalMs: number }> = {
  calendar_day: { unit: 'day', nominalMs: 86_400_000 },
  calendar_month: { unit: 'month', nominalMs: 31 * 86_400_000 },
};

/** Words that read like a calendar window but are not a unit, with what to write instead. */
const CALENDAR_HINTS: Record<string, string> = { mo: 'calendar_month', month: 'calendar_month', months: 'calendar_month' };

export const RATE = /^\s*(\d+)\s*\/\s*(\d+)?\s*([a-z_]+)\s*$/i;
const MAX_LIMIT = 1_000_000_000;
const MAX_WINDOW_MS = 366 * 86_400_000;

export class RateSyntaxError extends Error {}

/** Parses "30/m", "10/s", "500/h", "2000/d" or "100/15m"; throws a RateSyntaxError saying what is wrong. */
export function parseRate(text: string): Rate {
  const match = RATE.exec(text);
  const hint =
    'write <count>/<window> with window s, m, h or d (optionally with a multiple), e.g. "30/m" or "100/15m", or a calendar window: "1000/calendar_day", "5000000/calendar_month"';
  if (!match) throw new RateSyntaxError(`${JSON.stringify(text)} is not a rate; ${hint}`);
  const [, count, multiple, unit] = match as unknown as [string, string, string | undefined, string];
  const calendar = CALENDAR_UNITS[unit.toLowerCase()];
  if (calendar !== undefined) return calendarRate(text, Number(count), multiple, calendar.unit, calendar.nominalMs);
  const unitMs = UNIT_MS[unit.toLowerCase()];
  const instead = CALENDAR_HINTS[unit.toLowerCase()];
  if (instead !== undefined) {
    throw new RateSyntaxError(`${JSON.stringify(text)}: a month is a calendar window, reset on the first of the month: write "${count}/${instead}"`);
  }
  if (unitMs === undefined) throw new RateSyntaxError(`${JSON.stringify(text)} has unknown unit "${unit}"; ${hint}`);
  const limit = Number(count);
  const times = multiple === undefined ? 1 : Number(multiple);
  checkLimit(text, limit);
  if (times < 1) throw new RateSyntaxError(`${JSON.stringify(text)}: the window multiple must be at least 1`);
  const windowMs = times * unitMs;
  if (windowMs > MAX_WINDOW_MS) throw new RateSyntaxError(`${JSON.stringify(text)}: the window must be at most 366 days`);
  return { limit, windowMs, source: text.trim() };
}

function checkLimit(text: string, limit: number): void {
  if (limit < 1 || limit > MAX_LIMIT) throw new RateSyntaxError(`${JSON.stringify(text)}: the count must be between 1 and ${MAX_LIMIT}`);
}

/** "1000/calendar_day": one period of the calendar, no multiple. */
function calendarRate(text: string, limit: number, multiple: string | undefined, calendar: CalendarUnit, nominalMs: number): Rate {
  if (multiple !== undefined) {
    throw new RateSyntaxError(`${JSON.stringify(text)}: a calendar window takes no multiple; write "${limit}/calendar_${calendar}"`);
  }
  checkLimit(text, limit);
  return { limit, windowMs: nominalMs, source: text.trim(), calendarUnit: calendar };
}

const UNIT_WORDS: readonly [number, string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
];

/** "minute", "15 minutes", "calendar month": a window as a reply names it. */
export function describeWindow(windowMs: number, calendarUnit?: CalendarUnit): string {
  if (calendarUnit !== undefined) return `calendar ${calendarUnit}`;
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
  return `${rate.limit} per ${describeWindow(rate.windowMs, rate.calendarUnit)}`;
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
