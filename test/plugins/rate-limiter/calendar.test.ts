import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CalendarPeriods } from '../../../plugins/rate-limiter/calendar/periods.ts';
import { isTimeZone, TimeZone } from '../../../plugins/rate-limiter/calendar/zone.ts';

const at = (iso: string) => Date.parse(iso);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The period of `iso` in `zone`, as ISO instants (UTC). */
function period(zone: string, unit: 'day' | 'month', iso: string): [string, string] {
  const { start, end } = new CalendarPeriods(zone, unit).periodAt(at(iso));
  return [new Date(start).toISOString(), new Date(end).toISOString()];
}

describe('calendar days: from local midnight to local midnight', () => {
  it.each([
    // Europe/Berlin: CET (+1) and CEST (+2); DST starts 2026-03-29 02:00 and ends 2026-10-25 03:00.
    ['Europe/Berlin', '2026-06-15T12:00:00Z', '2026-06-14T22:00:00.000Z', '2026-06-15T22:00:00.000Z', 24],
    ['Europe/Berlin', '2026-03-29T12:00:00Z', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 23],
    ['Europe/Berlin', '2026-10-25T12:00:00Z', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 25],
    // America/New_York: DST starts 2026-03-08 and ends 2026-11-01, both at 02:00.
    ['America/New_York', '2026-03-08T12:00:00Z', '2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z', 23],
    ['America/New_York', '2026-11-01T12:00:00Z', '2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z', 25],
    // Asia/Kolkata: +05:30 all year, so its days begin at 18:30 UTC.
    ['Asia/Kolkata', '2026-06-15T18:29:59Z', '2026-06-14T18:30:00.000Z', '2026-06-15T18:30:00.000Z', 24],
    ['Asia/Kolkata', '2026-06-15T18:30:00Z', '2026-06-15T18:30:00.000Z', '2026-06-16T18:30:00.000Z', 24],
    // Australia/Lord_Howe: +10:30, and +11 in summer (a half-hour DST), from 2026-10-04 02:00 and until 2026-04-05 02:00.
    ['Australia/Lord_Howe', '2026-07-01T05:00:00Z', '2026-06-30T13:30:00.000Z', '2026-07-01T13:30:00.000Z', 24],
    ['Australia/Lord_Howe', '2026-04-05T05:00:00Z', '2026-04-04T13:00:00.000Z', '2026-04-05T13:30:00.000Z', 24.5],
    // America/Santiago moves its clocks at midnight: on 2026-09-06 the day starts at 01:00 (no midnight at all).
    ['America/Santiago', '2026-09-06T12:00:00Z', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z', 23],
    ['America/Santiago', '2026-04-04T12:00:00Z', '2026-04-04T03:00:00.000Z', '2026-04-05T04:00:00.000Z', 25],
    ['UTC', '2026-12-31T23:59:59.999Z', '2026-12-31T00:00:00.000Z', '2027-01-01T00:00:00.000Z', 24],
  ] as const)('%s at %s: %s to %s (%d hours)', (zone, instant, start, end, hours) => {
    expect(period(zone, 'day', instant)).toEqual([start, end]);
    expect((at(end) - at(start)) / HOUR).toBe(hours);
  });

  it('Lord Howe: the day DST starts lasts 23.5 hours', () => {
    // The first Sunday of October 2026 is the 4th: 02:00 becomes 02:30.
    const [start, end] = period('Australia/Lord_Howe', 'day', '2026-10-04T00:00:00Z');
    expect([start, end]).toEqual(['2026-10-03T13:30:00.000Z', '2026-10-04T13:00:00.000Z']);
    expect((at(end) - at(start)) / HOUR).toBe(23.5);
  });

  it('the last millisecond before local midnight is still the old day, midnight itself the new one', () => {
    const days = new CalendarPeriods('Europe/Berlin', 'day');
    const midnight = at('2026-10-25T22:00:00Z') + HOUR; // 2026-10-26 00:00 CET
    expect(days.periodAt(midnight - 1).end).toBe(midnight);
    expect(days.periodAt(midnight).start).toBe(midnight);
  });
});

describe('calendar months: from the first at midnight to the next first', () => {
  it.each([
    // 2026-12-31T23:00Z is already January 1st in Berlin.
    ['Europe/Berlin', '2026-12-31T22:59:59.999Z', '2026-11-30T23:00:00.000Z', '2026-12-31T23:00:00.000Z'],
    ['Europe/Berlin', '2026-12-31T23:00:00Z', '2026-12-31T23:00:00.000Z', '2027-01-31T23:00:00.000Z'],
    // March 2027 in Berlin is 31 days less the hour DST takes.
    ['Europe/Berlin', '2027-03-15T12:00:00Z', '2027-02-28T23:00:00.000Z', '2027-03-31T22:00:00.000Z'],
    ['Europe/Berlin', '2027-02-10T00:00:00Z', '2027-01-31T23:00:00.000Z', '2027-02-28T23:00:00.000Z'],
    ['America/New_York', '2026-11-15T00:00:00Z', '2026-11-01T04:00:00.000Z', '2026-12-01T05:00:00.000Z'],
    ['Asia/Kolkata', '2028-02-29T12:00:00Z', '2028-01-31T18:30:00.000Z', '2028-02-29T18:30:00.000Z'],
    ['UTC', '2026-02-01T00:00:00Z', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
  ] as const)('%s at %s: %s to %s', (zone, instant, start, end) => {
    expect(period(zone, 'month', instant)).toEqual([start, end]);
  });

  it('a month lasts as long as it has days, less or more the hour DST moves', () => {
    const months = new CalendarPeriods('Europe/Berlin', 'month');
    const length = (iso: string) => {
      const { start, end } = months.periodAt(at(iso));
      return (end - start) / HOUR;
    };
    expect(length('2027-02-10T00:00:00Z')).toBe(28 * 24);
    expect(length('2028-02-10T00:00:00Z')).toBe(29 * 24);
    expect(length('2027-03-10T00:00:00Z')).toBe(31 * 24 - 1);
    expect(length('2027-04-10T00:00:00Z')).toBe(30 * 24);
    expect(length('2027-10-10T00:00:00Z')).toBe(31 * 24 + 1);
  });
});

describe('the periods around an instant (what the Redis script is given)', () => {
  it('are the previous, the current and the next period, back to back', () => {
    const around = new CalendarPeriods('Europe/Berlin', 'month').around(at('2026-12-31T23:30:00Z'));
    expect(around.map((t) => new Date(t).toISOString())).toEqual([
      '2026-11-30T23:00:00.000Z',
      '2026-12-31T23:00:00.000Z',
      '2027-01-31T23:00:00.000Z',
      '2027-02-28T23:00:00.000Z',
    ]);
  });

  it('are worked out once per period', () => {
    const days = new CalendarPeriods('America/New_York', 'day');
    const first = days.around(at('2026-03-08T06:00:00Z'));
    expect(days.around(at('2026-03-09T03:59:59Z'))).toBe(first);
    expect(days.around(at('2026-03-09T04:00:00Z'))).not.toBe(first);
    expect(days.around(at('2026-03-09T04:00:00Z'))[1]).toBe(first[2]);
  });
});

describe('every instant lies in exactly one period, which begins on its local date', () => {
  const zones = ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago', 'Pacific/Chatham', 'UTC'];
  it('days and months, in zones with DST, half-hour and 45-minute offsets', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.constantFrom('day' as const, 'month' as const),
        fc.integer({ min: at('2020-01-01T00:00:00Z'), max: at('2035-12-31T00:00:00Z') }),
        (zone, unit, t) => {
          const periods = new CalendarPeriods(zone, unit);
          const local = new TimeZone(zone);
          const { start, end } = periods.periodAt(t);
          expect(start).toBeLessThanOrEqual(t);
          expect(end).toBeGreaterThan(t);
          const date = local.dateAt(t);
          const first = local.dateAt(start);
          expect(first.year * 100 + first.month).toBe(date.year * 100 + date.month);
          if (unit === 'day') expect(first.day).toBe(date.day);
          else expect(first.day).toBe(1);
          // The instant before the start is in the period before; the end starts the next one.
          expect(periods.periodAt(start - 1).end).toBe(start);
          expect(periods.periodAt(end).start).toBe(end);
          if (unit === 'day') expect(end - start).toBeGreaterThanOrEqual(22 * HOUR);
          if (unit === 'day') expect(end - start).toBeLessThanOrEqual(26 * HOUR);
          if (unit === 'month') expect(end - start).toBeGreaterThanOrEqual(28 * DAY - 2 * HOUR);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('time zone names', () => {
  it('knows IANA names and UTC, not misspellings or offsets', () => {
    for (const name of ['Europe/Berlin', 'Asia/Kolkata', 'Australia/Lord_Howe', 'UTC']) expect(isTimeZone(name)).toBe(true);
    for (const name of ['Europe/Berln', 'Mars/Olympus', '', ' Europe/Berlin', '+01:00']) expect(isTimeZone(name)).toBe(false);
  });
});
