import type { Algorithm, CalendarPeriod, Rule } from './types.ts';

/**
 * A count per calendar period (a day or a month in a time zone; see calendar/periods.ts): what a
 * budget "per month" means to the people who pay it. Everything charged in a period counts until the
 * period ends, and then all of it is gone at once. The fixed window's rules, with periods of their
 * own length instead of epoch-aligned ones of one length.
 */
export interface CalendarWindowState {
  /** The start (ms) of the period counted in. */
  start: number;
  /** Requests (tokens) charged in it; above the limit when a later charge put it in debt. */
  count: number;
}

function periodOf(rule: Rule, t: number): CalendarPeriod {
  if (rule.calendar === undefined) throw new Error('a calendar window needs a rule with a calendar');
  return rule.calendar.periodAt(t);
}

function countIn(state: CalendarWindowState | undefined, period: CalendarPeriod): number {
  return state !== undefined && state.start === period.start ? state.count : 0;
}

export const calendarWindow: Algorithm<CalendarWindowState> = {
  check(state, now, rule, cost = 1) {
    const period = periodOf(rule, now);
    return countIn(state, period) + cost <= rule.limit ? 0 : period.end - now;
  },
  consume(state, now, rule, cost = 1) {
    const period = periodOf(rule, now);
    const count = countIn(state, period) + cost;
    if (state === undefined) return { start: period.start, count };
    state.start = period.start;
    state.count = count;
    return state;
  },
  standing(state, now, rule) {
    const period = periodOf(rule, now);
    const count = countIn(state, period);
    return { remaining: Math.max(0, rule.limit - count), resetMs: count === 0 ? 0 : period.end - now };
  },
  expiresAt: (state, rule) => periodOf(rule, state.start).end,
  adjust(state, now, rule, at, _cost, delta) {
    // More spent: charged to the current period, whichever period the charge itself fell in.
    if (delta > 0) return calendarWindow.consume(state, now, rule, delta);
    // A refund only counts while the charge's period is the current one; a past period is gone.
    const period = periodOf(rule, now);
    if (state === undefined || state.start !== period.start || periodOf(rule, at).start !== period.start) return state;
    state.count = Math.max(0, state.count + delta);
    return state.count === 0 ? undefined : state;
  },
};
