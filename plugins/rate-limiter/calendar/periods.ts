import type { Calendar, CalendarPeriod } from '../algorithms/types.ts';
import { TimeZone } from './zone.ts';

/** What a calendar window counts per: a day or a month of the zone's wall clock. */
export type CalendarUnit = 'day' | 'month';

export const CALENDAR_UNITS: readonly CalendarUnit[] = ['day', 'month'];

/** How many periods a calendar keeps at hand: a decision's, its neighbours', and a settlement's. */
const REMEMBERED = 4;

/**
 * The days (or months) of one time zone as periods of instants: each from its local midnight (the
 * first of the month's) to the next, so a day lasts 23, 24 or 25 hours (23.5 or 24.5 at Lord Howe)
 * and a month 28 to 31 days. Periods are worked out once and remembered, so a decision in the current
 * period costs a comparison or two.
 */
export class CalendarPeriods implements Calendar {
  private readonly zone: TimeZone;
  /** The periods looked up last, newest first. */
  private readonly recent: CalendarPeriod[] = [];
  private lastAround: readonly number[] | undefined;

  constructor(
    readonly timeZone: string,
    readonly unit: CalendarUnit,
  ) {
    this.zone = new TimeZone(timeZone);
  }

  periodAt(t: number): CalendarPeriod {
    const { recent } = this;
    for (let i = 0; i < recent.length; i++) {
      const period = recent[i]!;
      if (t >= period.start && t < period.end) return period;
    }
    const period = this.compute(t);
    recent.unshift(period);
    if (recent.length > REMEMBERED) recent.pop();
    return period;
  }

  around(t: number): readonly number[] {
    const last = this.lastAround;
    if (last !== undefined && t >= last[1]! && t < last[2]!) return last;
    const { start, end } = this.periodAt(t);
    const around = Object.freeze([this.periodAt(start - 1).start, start, end, this.periodAt(end).end]);
    this.lastAround = around;
    return around;
  }

  private compute(t: number): CalendarPeriod {
    const { year, month, day } = this.zone.dateAt(t);
    if (this.unit === 'day') return { start: this.zone.startOfDay(year, month, day), end: this.zone.startOfDay(year, month, day + 1) };
    return { start: this.zone.startOfDay(year, month, 1), end: this.zone.startOfDay(year, month + 1, 1) };
  }
}
