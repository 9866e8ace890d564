import { describeWindow } from '../rate.ts';
import type { LimitRow, LimitsReport } from '../view.ts';
import { humanDuration } from './reply.ts';

/** The escalating block in force that ends last, if any: how long is left, and whether it is the team's. */
function pausedFor(report: LimitsReport): { seconds: number; team: boolean } | undefined {
  let paused: { seconds: number; team: boolean } | undefined;
  for (const block of report.blocks ?? []) {
    if (block.blocked && (paused === undefined || block.retryAfterSeconds > paused.seconds)) {
      paused = { seconds: block.retryAfterSeconds, team: block.subject === 'tenant' };
    }
  }
  return paused;
}

/** 12,345 as a user reads it. */
const count = new Intl.NumberFormat('en-US');

function what(row: LimitRow): string {
  const tokens = row.rule.unit === 'tokens';
  switch (row.rule.name) {
    case 'user':
      return tokens ? 'Tokens' : 'Messages';
    case 'tenant':
      return tokens ? 'Tokens for your whole team' : 'Messages for your whole team';
    case 'tool':
      return `The ${row.tool ?? 'tool'} tool`;
    case 'address':
      return 'Requests from your network';
  }
}

function line(row: LimitRow): string {
  const { limit, windowMs } = row.rule;
  const left = `${count.format(row.remaining)} of ${count.format(limit)} left per ${describeWindow(windowMs, row.rule.calendar?.unit)}`;
  const full = row.remaining >= limit || row.resetAfterSeconds <= 0;
  return `- ${what(row)}: ${left}${full ? '.' : `, back to ${count.format(limit)} in ${humanDuration(row.resetAfterSeconds)}.`}`;
}

/**
 * A user's own quota in words, for the `/limits` command: what they have left in each enforced
 * window and when it fills up again. Names rules and tools, never an id; shadow rules are the
 * operator's business and are left out.
 */
export function quotaText(report: LimitsReport): string {
  const rows = report.rows.filter((row) => !row.rule.shadow);
  const lines = rows.map(line);
  const paused = pausedFor(report);
  if (paused !== undefined) lines.unshift(`- Paused${paused.team ? ' for your whole team' : ''}: you can write again in ${humanDuration(paused.seconds)}.`);
  for (const slot of report.concurrency) {
    const whose = slot.name.startsWith('tenant') ? 'for your whole team' : 'at a time';
    lines.push(`- Requests in progress ${whose}: ${slot.inFlight} of ${slot.maxConcurrent}.`);
  }
  if (lines.length === 0) return 'No limits apply to you here. Checking costs nothing.';
  const stale = report.local ? '\n(These figures may be a little behind just now.)' : '';
  return `Here is what you have left:\n${lines.join('\n')}${stale}\nChecking with /limits costs nothing.`;
}

/**
 * The same in one short line, for the terminal chat's status line: "messages 27/30 per minute,
 * tokens 9,400/10,000 per hour". The user's and their team's windows only; '' when none applies.
 */
export function quotaLine(report: LimitsReport): string {
  const parts = report.rows
    .filter((row) => !row.rule.shadow && row.rule.name !== 'tool')
    .map((row) => {
      const unit = row.rule.unit === 'tokens' ? 'tokens' : 'messages';
      const whose = row.rule.name === 'tenant' ? `team ${unit}` : unit;
      return `${whose} ${count.format(row.remaining)}/${count.format(row.rule.limit)} per ${describeWindow(row.rule.windowMs, row.rule.calendar?.unit)}`;
    });
  const paused = pausedFor(report);
  if (paused !== undefined) parts.unshift(`paused ${humanDuration(paused.seconds)}`);
  return parts.join(', ');
}
