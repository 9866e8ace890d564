/** A local date: year, month (1-12), day of the month. */
export interface LocalDate {
  year: number;
  month: number;
  day: number;
}

/** Whether `name` is a time zone this runtime knows (an IANA name such as "Europe/Berlin", or "UTC"). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** The zones this runtime knows, for "did you mean" hints. */
export function knownTimeZones(): string[] {
  return [...Intl.supportedValuesOf('timeZone'), 'UTC'];
}

/** A date as one comparable number: 20261231. */
function dateKey(year: number, month: number, day: number): number {
  return year * 10_000 + month * 100 + day;
}

/** How far apart, at most, an instant and its wall-clock reading can be: offsets run from -12 h to +14 h. */
const WIDEST_OFFSET_MS = 15 * 3_600_000;

/**
 * Wall-clock dates in one IANA time zone, and the instants its days begin, by the runtime's own
 * time-zone data (Intl.DateTimeFormat): no library, and the rules (DST, offsets that are not whole
 * hours) are the tz database's.
 */
export class TimeZone {
  private readonly format: Intl.DateTimeFormat;

  /** `name` must be a known zone (see isTimeZone); a RangeError otherwise. */
  constructor(readonly name: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The local date at instant `t` (ms since the epoch). */
  dateAt(t: number): LocalDate {
    const { year, month, day } = this.wallClock(t);
    return { year, month, day };
  }

  /**
   * The first instant whose local date is `date` or later: that day's midnight, or, where a DST
   * change skips midnight (America/Santiago, for one), the first instant after the gap. Out-of-range
   * days roll over as Date.UTC rolls them (day 32 of December is January 1st).
   */
  startOfDay(year: number, month: number, day: number): number {
    const local = Date.UTC(year, month - 1, day);
    const normal = new Date(local);
    const target = dateKey(normal.getUTCFullYear(), normal.getUTCMonth() + 1, normal.getUTCDate());
    // The offset in force near that midnight, refined once: right unless an offset change is close by.
    let guess = local - this.offsetAt(local);
    guess = local - this.offsetAt(guess);
    if (this.dateKeyAt(guess) >= target && this.dateKeyAt(guess - 1) < target) return guess;
    // Near a change: search the instant the date turns (it lies within the widest offset of local midnight).
    let before = local - WIDEST_OFFSET_MS;
    let after = local + WIDEST_OFFSET_MS;
    while (after - before > 1) {
      const mid = Math.floor((before + after) / 2);
      if (this.dateKeyAt(mid) >= target) after = mid;
      else before = mid;
    }
    return after;
  }

  private wallClock(t: number): LocalDate & { hour: number; minute: number; second: number } {
    const wall = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
    for (const part of this.format.formatToParts(t)) {
      if (part.type in wall) wall[part.type as keyof typeof wall] = Number(part.value);
    }
    return wall;
  }

  private dateKeyAt(t: number): number {
    const { year, month, day } = this.wallClock(t);
    return dateKey(year, month, day);
  }

  /** Local time minus UTC at instant `t`, in ms (to the second: the formatter shows no finer). */
  private offsetAt(t: number): number {
    const w = this.wallClock(t);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(t / 1000) * 1000;
  }
}
