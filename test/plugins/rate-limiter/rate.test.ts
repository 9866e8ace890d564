import { describe, expect, it } from 'vitest';
import { describeRate, parseRate, RateSyntaxError } from '../../../plugins/rate-limiter/rate.ts';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseRate', () => {
  it.each([
    ['1000/calendar_day', 1000, 'day', DAY],
    ['5000000/calendar_month', 5_000_000, 'month', 31 * DAY],
    [' 7 / Calendar_Month ', 7, 'month', 31 * DAY],
  ] as const)('reads %j as a calendar window (%i per %s)', (text, limit, unit, nominal) => {
    expect(parseRate(text)).toEqual({ limit, windowMs: nominal, source: text.trim(), calendarUnit: unit });
  });

  it('says how to write a month, and that a calendar window takes no multiple', () => {
    expect(() => parseRate('100/month')).toThrow('"100/month": a month is a calendar window, reset on the first of the month: write "100/calendar_month"');
    expect(() => parseRate('100/2calendar_month')).toThrow('a calendar window takes no multiple; write "100/calendar_month"');
    expect(() => parseRate('0/calendar_day')).toThrow('the count must be between 1 and');
  });

  it('describes a calendar window as one', () => {
    expect(describeRate(parseRate('1000/calendar_day'))).toBe('1000 per calendar day');
    expect(describeRate(parseRate('5000000/calendar_month'))).toBe('5000000 per calendar month');
  });

  it.each([
    ['30/m', 30, MINUTE],
    ['10/s', 10, SECOND],
    ['500/h', 500, HOUR],
    ['2000/d', 2000, DAY],
    ['100/15m', 100, 15 * MINUTE],
    ['1/366d', 1, 366 * DAY],
    ['1000000000/s', 1_000_000_000, SECOND],
  ])('reads %s as %i per %i ms', (text, limit, windowMs) => {
    expect(parseRate(text)).toEqual({ limit, windowMs, source: text });
  });

  it.each([
    [' 30/m ', 30, MINUTE, '30/m'],
    ['30 / m', 30, MINUTE, '30 / m'],
    ['\t100 / 15 m\n', 100, 15 * MINUTE, '100 / 15 m'],
  ])('tolerates spaces: %j', (text, limit, windowMs, source) => {
    expect(parseRate(text)).toEqual({ limit, windowMs, source });
  });

  it.each([
    ['10/sec', SECOND],
    ['10/second', SECOND],
    ['10/seconds', SECOND],
    ['10/min', MINUTE],
    ['10/minute', MINUTE],
    ['10/minutes', MINUTE],
    ['10/hr', HOUR],
    ['10/hour', HOUR],
    ['10/hours', HOUR],
    ['10/day', DAY],
    ['10/days', DAY],
    ['10/15minutes', 15 * MINUTE],
    ['10/2 hours', 2 * HOUR],
    ['10/M', MINUTE],
    ['10/Minute', MINUTE],
  ])('accepts the unit spelling %j', (text, windowMs) => {
    expect(parseRate(text)).toMatchObject({ limit: 10, windowMs });
  });

  const EXAMPLE = /e\.g\. "30\/m"/;

  it.each(['abc/m', '60/x', ''])('rejects %j, quoting it and showing an example of a valid rate', (text) => {
    let error: unknown;
    try {
      parseRate(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RateSyntaxError);
    const message = (error as Error).message;
    expect(message).toContain(JSON.stringify(text));
    expect(message).toMatch(EXAMPLE);
  });

  it('names the unknown unit', () => {
    expect(() => parseRate('60/x')).toThrow(/unknown unit "x"/);
    expect(() => parseRate('60/weeks')).toThrow(/unknown unit "weeks"/);
  });

  it('rejects a zero count, quoting the input and giving the allowed range', () => {
    expect(() => parseRate('0/m')).toThrow(RateSyntaxError);
    expect(() => parseRate('0/m')).toThrow('"0/m": the count must be between 1 and 1000000000');
    expect(() => parseRate('1000000001/m')).toThrow(/"1000000001\/m": the count must be between 1 and/);
  });

  it('rejects a zero window multiple, quoting the input', () => {
    expect(() => parseRate('10/0m')).toThrow(RateSyntaxError);
    expect(() => parseRate('10/0m')).toThrow('"10/0m": the window multiple must be at least 1');
  });

  it.each(['-1/m', '1.5/m', '30/', '/m', '30m', '30/m/s', '30 per minute'])('rejects the malformed rate %j', (text) => {
    expect(() => parseRate(text)).toThrow(RateSyntaxError);
  });

  it('rejects a window longer than 366 days', () => {
    expect(() => parseRate('1/367d')).toThrow('"1/367d": the window must be at most 366 days');
  });
});

describe('describeRate', () => {
  it.each([
    ['30/m', '30 per minute'],
    ['10/s', '10 per second'],
    ['500/h', '500 per hour'],
    ['2000/d', '2000 per day'],
    ['100/15m', '100 per 15 minutes'],
    ['5/2h', '5 per 2 hours'],
    ['3/10s', '3 per 10 seconds'],
    ['10/90s', '10 per 90 seconds'],
    ['1/7d', '1 per 7 days'],
    ['1/60s', '1 per minute'],
    ['1/24h', '1 per day'],
    ['1/120m', '1 per 2 hours'],
  ])('describes %s as "%s"', (text, description) => {
    expect(describeRate(parseRate(text))).toBe(description);
  });

  it('falls back to milliseconds for a window that is not whole seconds', () => {
    expect(describeRate({ limit: 5, windowMs: 1500, source: '5/1500ms' })).toBe('5 per 1500 ms');
  });
});
