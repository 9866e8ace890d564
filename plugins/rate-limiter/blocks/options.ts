import { z } from 'zod';
import { DEFAULT_REPLIES, templateProblems } from '../present/reply.ts';
import type { BlockPolicy, BlockSubject } from './types.ts';

const UNIT_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, second: 1_000, seconds: 1_000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};
const DURATION = /^\s*(\d+)\s*([a-z]+)\s*$/i;
const MAX_DURATION_MS = 366 * 86_400_000;

/** "90s", "10m", "1h", "1d": milliseconds, or what is wrong with the text. */
export function parseDuration(text: string): { ms: number } | { problem: string } {
  const hint = 'write a number and a unit s, m, h or d, e.g. "10m" or "1h"';
  const match = DURATION.exec(text);
  if (!match) return { problem: `${JSON.stringify(text)} is not a duration; ${hint}` };
  const unitMs = UNIT_MS[match[2]!.toLowerCase()];
  if (unitMs === undefined) return { problem: `${JSON.stringify(text)} has unknown unit "${match[2]}"; ${hint}` };
  const ms = Number(match[1]) * unitMs;
  if (ms < 1_000 || ms > MAX_DURATION_MS) return { problem: `${JSON.stringify(text)}: a duration must be between 1 second and 366 days` };
  return { ms };
}

const Duration = z.string().transform((text, ctx): number => {
  const parsed = parseDuration(text);
  if ('ms' in parsed) return parsed.ms;
  ctx.addIssue({ code: 'custom', message: parsed.problem, input: text });
  return z.NEVER;
});

export const BLOCK_SUBJECTS = ['user', 'tenant', 'address'] as const satisfies readonly BlockSubject[];

/** The block settings, parsed: the policy every blocked family shares, and what it applies to. */
export interface BlockSettings {
  policy: BlockPolicy;
  /** Whose refusals lead to blocks: "user" (by_user and by_tool rules), "tenant" (by_tenant), "address" (by_address). */
  subjects: readonly BlockSubject[];
  /** The reply to a blocked subject; placeholders {duration} and {retry_after}. */
  message: string;
}

/**
 * `block`: a subject refused `after` times in one limited spell is blocked on its next refusal, for
 * `durations[0]`, then (blocked again) `durations[1]`, ..., the last one repeating; each
 * `decay_after` after a block has ended takes one level off.
 */
export const BlockOptions = z
  .strictObject({
    /** Refusals in one limited spell before the next one starts a block (0: the first refusal blocks). */
    after: z.number().int().min(0).max(1_000).default(3),
    /** How long the first, second, ... block lasts: ["1m", "10m", "1h"]; the last one repeats. */
    durations: z.array(Duration).min(1, 'list at least one duration, e.g. ["1m", "10m", "1h"]').max(10, 'at most 10 levels'),
    /** Each span this long after a block has ended takes the next block one level down. */
    decay_after: Duration.prefault('1d'),
    /** Whose refusals lead to blocks: "user" (by_user and by_tool rules), "tenant" (by_tenant), "address" (by_address). */
    subjects: z.array(z.enum(BLOCK_SUBJECTS)).min(1).max(BLOCK_SUBJECTS.length).default(['user']),
    /** The reply to a blocked subject, once per block; placeholders {duration} and {retry_after}. */
    message: z
      .string()
      .superRefine((text, ctx) => {
        for (const problem of templateProblems(text, 'blocked_message')) ctx.addIssue({ code: 'custom', message: problem, input: text });
      })
      .default(DEFAULT_REPLIES.blocked_message),
  })
  .superRefine((block, ctx) => {
    for (let i = 1; i < block.durations.length; i++) {
      if (block.durations[i]! < block.durations[i - 1]!) {
        ctx.addIssue({ code: 'custom', message: 'each block must last at least as long as the one before it', path: ['durations', i] });
      }
    }
    if (new Set(block.subjects).size < block.subjects.length) ctx.addIssue({ code: 'custom', message: 'a subject is listed twice', path: ['subjects'] });
  })
  .transform(
    (block): BlockSettings => ({
      policy: { after: block.after, durationsMs: block.durations, decayMs: block.decay_after },
      subjects: block.subjects,
      message: block.message,
    }),
  );
