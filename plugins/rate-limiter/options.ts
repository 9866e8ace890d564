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

/** A rate, or an issue at `path` saying what is wrong with it. */
function rateOrIssue(text: unknown, ctx: z.RefinementCtx, path: (string | number)[]): Rate | undefined {
  if (typeof text !== 'string') {
    ctx.addIssue({ code: 'custom', message: 'expected a rate like "30/m"', path, input: text });
    return undefined;
  }
  try {
    return parseRate(text);
  } catch (error) {
    if (!(error instanceof RateSyntaxError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message, path, input: text });
    return undefined;
  }
}

/** One rate, or several windows that must all admit: "30/m" or ["30/m", "500/h", "2000/d"]. */
const RateSpec = z.unknown().transform((spec, ctx): Rate | Rate[] => {
  if (!Array.isArray(spec)) return rateOrIssue(spec, ctx, []) ?? z.NEVER;
  if (spec.length === 0 || spec.length > 10) {
    ctx.addIssue({ code: 'custom', message: 'expected 1 to 10 rates', input: spec });
    return z.NEVER;
  }
  const rates = spec.map((text, i) => rateOrIssue(text, ctx, [i]));
  const windows = new Set<number>();
  for (const [i, rate] of rates.entries()) {
    if (rate === undefined) continue;
    if (windows.has(rate.windowMs)) ctx.addIssue({ code: 'custom', message: 'another rate in this list has the same window', path: [i] });
    windows.add(rate.windowMs);
  }
  return rates.every((r) => r !== undefined) ? (rates as Rate[]) : z.NEVER;
});

const Template = z.string().superRefine((text, ctx) => {
  for (const problem of templateProblems(text)) ctx.addIssue({ code: 'custom', message: problem, input: text });
});

export const BACKENDS = ['memory', 'redis'] as const;
export const ON_BACKEND_ERROR = ['fallback', 'open', 'closed'] as const;

const RedisUrl = z.string().refine((url) => /^rediss?:\/\/[^/\s]+/.test(url), {
  message: 'expected a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"',
});

/** "host:port" of a cluster seed node. */
const SeedNode = z.string().refine((seed) => /^[^\s:]+:\d{1,5}$/.test(seed) || /^rediss?:\/\/[^/\s]+/.test(seed), {
  message: 'expected "host:port" or a redis:// URL, e.g. "127.0.0.1:7000"',
});

export const RateLimiterOptions = z
  .strictObject({
    /** Requests per user per channel, e.g. "30/m". */
    by_user: RateSpec.optional(),
    /** Requests per tenant (all its users together). */
    by_tenant: RateSpec.optional(),
    /** Per-tool rates that replace by_user for calls of that tool, e.g. {"search": "10/m"}. */
    by_tool: z.record(z.string(), RateSpec).default({}),
    algorithm: z.enum(ALGORITHM_NAMES).default('sliding_window'),
    backend: z.enum(BACKENDS).default('memory'),
    /** The friendly reply; placeholders {retry_after} and {limit}. */
    message: Template.default(DEFAULT_MESSAGE),
    /** Seconds between two slow-down replies to one user on chat channels; default: the retry time. */
    reply_cooldown: z.number().min(0).max(86_400).optional(),
    /** Most keys held in memory; the oldest are evicted beyond it. */
    max_keys: z.number().int().min(1).max(100_000_000).default(100_000),
    /** Users never limited (matched after normalisation, on every channel). */
    exempt_users: z.array(z.string().max(256)).default([]),
    /** Tenants whose users are never limited. */
    exempt_tenants: z.array(z.string().max(256)).default([]),
    /** The Redis server for backend "redis" (required unless redis_cluster is set). */
    redis_url: RedisUrl.optional(),
    /** Seed nodes of a Redis Cluster, instead of redis_url. */
    redis_cluster: z.array(SeedNode).min(1).optional(),
    /** Prefix of every key this limiter writes. */
    redis_key_prefix: z
      .string()
      .regex(/^[^{}\s]{1,64}$/, 'expected 1-64 characters without braces or spaces')
      .default('fg'),
    /** A Redis decision slower than this counts as a failure. */
    redis_timeout_ms: z.number().int().min(1).max(60_000).default(50),
    /** When Redis fails: decide in local memory (fallback), admit (open) or refuse (closed). */
    on_backend_error: z.enum(ON_BACKEND_ERROR).default('fallback'),
  })
  .superRefine((options, ctx) => {
    if (!options.by_user && !options.by_tenant && Object.keys(options.by_tool).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'no limit configured: set by_user, by_tenant or by_tool', path: [] });
    }
    if (options.backend === 'redis' && !options.redis_url && !options.redis_cluster) {
      ctx.addIssue({
        code: 'custom',
        message: 'backend "redis" needs redis_url (e.g. "redis://127.0.0.1:6379") or redis_cluster',
        path: ['redis_url'],
      });
    }
    if (options.redis_url && options.redis_cluster) {
      ctx.addIssue({ code: 'custom', message: 'set either redis_url or redis_cluster, not both', path: ['redis_cluster'] });
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
