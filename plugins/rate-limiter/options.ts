import { AddressList, closest, ROUTE_GROUPS } from '../../src/plugin-sdk.ts';
import { z } from 'zod';
import { ALGORITHM_NAMES } from './algorithms/types.ts';
import { isTimeZone, knownTimeZones } from './calendar/zone.ts';
import { normalizeId, normalizeToolName } from './keys.ts';
import { parseRate, rateList, RateSyntaxError, type Rate } from './rate.ts';
import { DEFAULT_REPLIES, templateProblems, type ReplyKind } from './present/reply.ts';
import { BlockOptions } from './blocks/options.ts';

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
export const RateSpec = z.unknown().transform((spec, ctx): Rate | Rate[] => {
  if (!Array.isArray(spec)) return rateOrIssue(spec, ctx, []) ?? z.NEVER;
  if (spec.length === 0 || spec.length > 10) {
    ctx.addIssue({ code: 'custom', message: 'expected 1 to 10 rates', input: spec });
    return z.NEVER;
  }
  const rates = spec.map((text, i) => rateOrIssue(text, ctx, [i]));
  // A calendar day is not the sliding "1/d" of the same nominal length: each is a window of its own.
  const windows = new Set<number | string>();
  for (const [i, rate] of rates.entries()) {
    if (rate === undefined) continue;
    const window = rate.calendarUnit ?? rate.windowMs;
    if (windows.has(window)) ctx.addIssue({ code: 'custom', message: 'another rate in this list has the same window', path: [i] });
    windows.add(window);
  }
  return rates.every((r) => r !== undefined) ? (rates as Rate[]) : z.NEVER;
});

/** What one setting (by_user, by_tenant, a by_tool entry) limits, whichever form it was written in. */
export interface LimitSetting {
  /** Requests per window; several windows must all admit. */
  rates: Rate[];
  /** Tokens per window (prompt fetches only), reserved from the estimate and settled by postPromptFetch. */
  tokens: Rate[];
  /** Most prompt fetches in flight at once. */
  maxConcurrent: number | undefined;
  /** How long a fetch beyond maxConcurrent waits for a slot before it is refused. */
  queueTimeoutMs: number;
  /** Counted and reported, never enforced. */
  shadow: boolean;
}

export const SettingObject = z
  .strictObject({
    /** Requests: "30/m" or ["30/m", "500/h"]. */
    rate: RateSpec.optional(),
    /** Tokens: "20000/m" or ["20000/m", "1000000/d"]. */
    tokens: RateSpec.optional(),
    max_concurrent: z.number().int().min(1).max(100_000).optional(),
    queue_timeout_ms: z.number().int().min(0).max(60_000).optional(),
    shadow: z.boolean().default(false),
  })
  .superRefine((setting, ctx) => {
    if (setting.rate === undefined && setting.tokens === undefined && setting.max_concurrent === undefined) {
      ctx.addIssue({ code: 'custom', message: 'set at least one of rate, tokens or max_concurrent', path: [] });
    }
    if (setting.queue_timeout_ms !== undefined && setting.max_concurrent === undefined) {
      ctx.addIssue({ code: 'custom', message: 'queue_timeout_ms needs max_concurrent', path: ['queue_timeout_ms'] });
    }
    if (setting.shadow && setting.max_concurrent !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'a shadow setting cannot cap concurrency (it would have to hold real slots); drop max_concurrent or shadow',
        path: ['max_concurrent'],
      });
    }
  });

const SETTING_FIELDS = Object.keys(SettingObject.shape);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A rate, a list of windows, or an object with rate, tokens, max_concurrent, queue_timeout_ms, shadow. */
const Setting = z.unknown().transform((spec, ctx): LimitSetting => {
  const copyIssues = (issues: z.core.$ZodIssue[]): never => {
    for (const issue of issues) {
      if (issue.code !== 'unrecognized_keys') {
        ctx.addIssue({ ...issue, input: (issue as { input?: unknown }).input ?? spec } as z.core.$ZodRawIssue);
        continue;
      }
      // Said here, with the hint, because the host's formatter cannot see through this transform.
      for (const key of issue.keys) {
        const hint = closest(key, SETTING_FIELDS);
        ctx.addIssue({ code: 'custom', message: `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`, path: [...issue.path, key] });
      }
    }
    return z.NEVER;
  };
  if (!isPlainObject(spec)) {
    const rates = RateSpec.safeParse(spec);
    if (!rates.success) return copyIssues(rates.error.issues);
    return { rates: rateList(rates.data), tokens: [], maxConcurrent: undefined, queueTimeoutMs: 0, shadow: false };
  }
  const object = SettingObject.safeParse(spec);
  if (!object.success) return copyIssues(object.error.issues);
  return {
    rates: rateList(object.data.rate),
    tokens: rateList(object.data.tokens),
    maxConcurrent: object.data.max_concurrent,
    queueTimeoutMs: object.data.queue_timeout_ms ?? 0,
    shadow: object.data.shadow,
  };
});

/** A by_tool entry: requests only (tokens and concurrency belong to prompt fetches). */
const ToolSetting = Setting.superRefine((setting, ctx) => {
  if (setting.tokens.length > 0) {
    ctx.addIssue({ code: 'custom', message: 'tokens apply to prompt fetches: set them on by_user or by_tenant', path: ['tokens'] });
  }
  if (setting.maxConcurrent !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'max_concurrent applies to prompt fetches: set it on by_user or by_tenant', path: ['max_concurrent'] });
  }
  if (setting.rates.length === 0 && setting.tokens.length === 0 && setting.maxConcurrent === undefined) return;
  if (setting.rates.length === 0) ctx.addIssue({ code: 'custom', message: 'a tool setting needs a rate', path: ['rate'] });
});

/** A reply template of one kind, checked for placeholders that kind has no value for. */
function template(kind: ReplyKind) {
  return z
    .string()
    .superRefine((text, ctx) => {
      for (const problem of templateProblems(text, kind)) ctx.addIssue({ code: 'custom', message: problem, input: text });
    })
    .default(DEFAULT_REPLIES[kind]);
}

/** CIDR ranges (or single addresses), each checked at startup. */
const AddressRanges = z.array(
  z.string().superRefine((text, ctx) => {
    for (const { problem } of AddressList.parse([text]).problems) ctx.addIssue({ code: 'custom', message: problem, input: text });
  }),
);

/** Per route group: "messages", "webhooks", "admin", "metrics", "health", "other". */
const RouteRates = z.strictObject(Object.fromEntries(ROUTE_GROUPS.map((group) => [group, RateSpec.optional()])) as Record<(typeof ROUTE_GROUPS)[number], z.ZodOptional<typeof RateSpec>>);

/** Limits per client address on the HTTP server, decided before a request's body is read. */
export const AddressSetting = z
  .strictObject({
    /** Per address and route group, for every group without a rate of its own in `routes`. */
    rate: RateSpec.optional(),
    /** A route group's own rate, e.g. {"admin": "10/m"}. */
    routes: RouteRates.default({}),
    /** What a request that fails authentication (wrong admin token, bad webhook signature) counts as, in requests. */
    failed_auth_cost: z.number().int().min(1).max(10_000).default(10),
    /** IPv6 addresses count together by this prefix (one subscriber usually has a whole /64). */
    ipv6_prefix: z.number().int().min(1).max(128).default(64),
    /** Addresses never limited. */
    exempt: AddressRanges.default([]),
    /** Addresses refused (403) on every route; deny wins over exempt. */
    deny: AddressRanges.default([]),
  })
  .superRefine((setting, ctx) => {
    if (setting.rate === undefined && Object.keys(setting.routes).length === 0 && setting.deny.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'set at least one of rate, routes or deny', path: [] });
    }
  });
export type AddressSetting = z.infer<typeof AddressSetting>;

export const BACKENDS = ['memory', 'redis'] as const;
/** Which rate-limit headers answers carry (Retry-After on a refusal always). */
export const HEADER_STYLES = ['all', 'ietf', 'legacy', 'none'] as const;
export type HeaderStyle = (typeof HEADER_STYLES)[number];
export const ON_BACKEND_ERROR = ['fallback', 'open', 'closed'] as const;

/** An IANA time zone name ("Europe/Berlin", "America/New_York") or "UTC", as the runtime's tz data knows them. */
const TimeZoneName = z.string().superRefine((name, ctx) => {
  if (isTimeZone(name)) return;
  const hint = closest(name, knownTimeZones());
  ctx.addIssue({
    code: 'custom',
    message: `${JSON.stringify(name)} is not a time zone${hint ? ` (did you mean "${hint}"?)` : ''}; write an IANA name such as "Europe/Berlin" or "UTC"`,
    input: name,
  });
});

const RedisUrl = z.string().refine((url) => /^rediss?:\/\/[^/\s]+/.test(url), {
  message: 'expected a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"',
});

/** "host:port" of a cluster seed node. */
const SeedNode = z.string().refine((seed) => /^[^\s:]+:\d{1,5}$/.test(seed) || /^rediss?:\/\/[^/\s]+/.test(seed), {
  message: 'expected "host:port" or a redis:// URL, e.g. "127.0.0.1:7000"',
});

export const RateLimiterOptions = z
  .strictObject({
    /** Per user per channel: "30/m", ["30/m", "500/h"], or {rate, tokens, max_concurrent, queue_timeout_ms, shadow}. */
    by_user: Setting.optional(),
    /** Per tenant (all its users together), in the same forms as by_user. */
    by_tenant: Setting.optional(),
    /** Per-tool rates that replace by_user's for calls of that tool, e.g. {"search": "10/m"}. */
    by_tool: z.record(z.string(), ToolSetting).default({}),
    /**
     * How long a concurrency slot stays held without its call ending (postPromptFetch or cancel): what a
     * crashed gateway's slots cost on Redis before they free themselves. Live holders renew it.
     */
    concurrency_lease_ms: z.number().int().min(1_000).max(3_600_000).default(60_000),
    algorithm: z.enum(ALGORITHM_NAMES).default('sliding_window'),
    backend: z.enum(BACKENDS).default('memory'),
    /** The friendly reply to a user over a rate or token budget; placeholders {retry_after} and {limit}. */
    message: template('message'),
    /** The reply when too many of a user's (or team's) calls are in flight; {in_progress} and {retry_after}. */
    concurrency_message: template('concurrency_message'),
    /** The reply to one call larger than a whole token budget; {tokens} and {limit}. */
    too_large_message: template('too_large_message'),
    /** The reply while the shared backend is down under on_backend_error "closed"; {retry_after}. */
    unavailable_message: template('unavailable_message'),
    /** The answer to a client address over its by_address limit; {retry_after} and {limit}. */
    address_message: template('address_message'),
    /** The reply to a denied user, tenant or address (403); no placeholders. */
    denied_message: template('denied_message'),
    /**
     * Rate-limit headers on answers: all (the X-RateLimit-* trio and the IETF RateLimit-Policy and
     * RateLimit fields), ietf, legacy (X-RateLimit-*) or none. Retry-After goes with every refusal.
     */
    headers: z.enum(HEADER_STYLES).default('all'),
    /** Escalating blocks for subjects that keep sending while refused: {after, durations, decay_after, subjects, message}. */
    block: BlockOptions.optional(),
    /** Where calendar windows ("1000/calendar_day", "5000000/calendar_month") turn: midnight in this IANA time zone. */
    time_zone: TimeZoneName.default('UTC'),
    /** Seconds between two slow-down replies to one user on chat channels; default: the retry time. */
    reply_cooldown: z.number().min(0).max(86_400).optional(),
    /** Most keys held in memory; the oldest are evicted beyond it. */
    max_keys: z.number().int().min(1).max(100_000_000).default(100_000),
    /** Users never limited (matched after normalisation, on every channel). */
    exempt_users: z.array(z.string().max(256)).default([]),
    /** Tenants whose users are never limited. */
    exempt_tenants: z.array(z.string().max(256)).default([]),
    /** Users whose messages are refused (403), matched as exempt_users are. */
    deny_users: z.array(z.string().max(256)).default([]),
    /** Tenants whose users' messages are refused (403). */
    deny_tenants: z.array(z.string().max(256)).default([]),
    /** Per client address on the HTTP server, before a request's body is read: {rate, routes, failed_auth_cost, ipv6_prefix, exempt, deny}. */
    by_address: AddressSetting.optional(),
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
    /**
     * On Redis: answer a flooder's refusals from each instance's memory, exactly as Redis would, until
     * they would end (see backend/refusal-cache.ts); false sends every decision to Redis.
     */
    refusal_cache: z.boolean().default(true),
  })
  .superRefine((options, ctx) => {
    const denies = options.deny_users.length + options.deny_tenants.length > 0;
    if (!options.by_user && !options.by_tenant && Object.keys(options.by_tool).length === 0 && !options.by_address && !denies) {
      ctx.addIssue({ code: 'custom', message: 'no limit configured: set by_user, by_tenant, by_tool or by_address', path: [] });
    }
    for (const [deny, exempt] of [['deny_users', 'exempt_users'], ['deny_tenants', 'exempt_tenants']] as const) {
      const exempted = new Set(options[exempt].map(normalizeId));
      options[deny].forEach((id, i) => {
        if (normalizeId(id) !== '' && exempted.has(normalizeId(id))) {
          ctx.addIssue({ code: 'custom', message: `also listed in ${exempt}; an id cannot be both exempt and denied`, path: [deny, i] });
        }
      });
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
    if (options.block?.subjects.includes('address') && (options.by_address === undefined || (options.by_address.rate === undefined && Object.keys(options.by_address.routes).length === 0))) {
      ctx.addIssue({ code: 'custom', message: 'blocking "address" needs a by_address rate (its refusals are what start the blocks)', path: ['block', 'subjects'] });
    }
    if (options.block?.subjects.includes('tenant') && !options.by_tenant) {
      ctx.addIssue({ code: 'custom', message: 'blocking "tenant" needs by_tenant (its refusals are what start the blocks)', path: ['block', 'subjects'] });
    }
    if (options.block?.subjects.includes('user') && !options.by_user && Object.keys(options.by_tool).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'blocking "user" needs by_user or by_tool (their refusals are what start the blocks)', path: ['block', 'subjects'] });
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
