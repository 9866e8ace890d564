import { z } from 'zod';
import { ALGORITHM_NAMES } from './algorithms/types.ts';
import { normalizeToolName } from './keys.ts';
import { parseRate, RateSyntaxError, type Rate } from './rate.ts';
import { TEMPLATE_PLACEHOLDERS, DEFAULT_MESSAGE, templateProblems } from './reply.ts';

const RateString = z.string().transform((text, ctx): Rate => {
  try {
    return parseRate(text);
  } catch (error) {
    if (!(error instanceof RateSyntaxError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message, input: text });
    return z.NEVER;
  }
});

const Template = z.string().superRefine((text, ctx) => {
  for (const problem of templateProblems(text)) ctx.addIssue({ code: 'custom', message: problem, input: text });
});

export const BACKENDS = ['memory'] as const;

export const RateLimiterOptions = z
  .strictObject({
    /** Requests per user per channel, e.g. "30/m". */
    by_user: RateString.optional(),
    /** Requests per tenant (all its users together). */
    by_tenant: RateString.optional(),
    /** Per-tool rates that replace by_user for calls of that tool, e.g. {"search": "10/m"}. */
    by_tool: z.record(z.string(), RateString).default({}),
    algorithm: z.enum(ALGORITHM_NAMES).default('sliding_window'),
    backend: z.enum(BACKENDS).default('memory'),
    /** The friendly reply; placeholders {retry_after} and {limit}. */
    message: Template.default(DEFAULT_MESSAGE),
    /** Seconds between two slow-down replies to one user on chat channels; default: the retry time. */
    reply_cooldown: z.number().min(0).max(86_400).optional(),
    /** Most keys held in memory; the oldest are evicted beyond it. */
    max_keys: z.number().int().min(1).max(100_000_000).default(100_000),
  })
  .superRefine((options, ctx) => {
    if (!options.by_user && !options.by_tenant && Object.keys(options.by_tool).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'no limit configured: set by_user, by_tenant or by_tool', path: [] });
    }
    const seen = new Map<string, string>();
    for (const name of Object.keys(options.by_tool)) {
      const normal = normalizeToolName(name);
      if (normal === '') {
        ctx.addIssue({ code: 'custom', message: 'a tool name must not be empty', path: ['by_tool', name] });
      }
      const other = seen.get(normal);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `"${name}" and "${other}" name the same tool (names are matched trimmed and case-folded)`,
          path: ['by_tool', name],
        });
      }
      seen.set(normal, name);
    }
  });

export type RateLimiterOptions = z.infer<typeof RateLimiterOptions>;
export { TEMPLATE_PLACEHOLDERS };
