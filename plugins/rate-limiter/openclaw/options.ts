import { z } from 'zod';
import { RateLimiterOptions } from '../options.ts';

/**
 * What Floodgate's host config says about a plugin (plugins[].mode, on_error, hooks.timeout_ms), said
 * in the plugin's own config under OpenClaw, whose runner has no such settings of its own.
 */
export const HostOptions = z.strictObject({
  /** enforce: refusals stop the message or tool call; permissive: they are logged only. */
  mode: z.enum(['enforce', 'permissive']).default('enforce'),
  /** When the limiter throws or does not answer in timeout_ms: let the message or tool call through, or refuse it. */
  on_error: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
  /**
   * How long a decision may take before on_error decides (a prompt waiting for a concurrency slot
   * gets its queue_timeout_ms on top). Below OpenClaw's 15 s, after which it blocks tool calls itself.
   */
  timeout_ms: z.number().int().min(1).max(14_000).default(1000),
});
export type HostOptions = z.infer<typeof HostOptions>;

const HOST_KEYS: ReadonlySet<string> = new Set(Object.keys(HostOptions.shape));

export interface OpenClawOptions {
  host: HostOptions;
  limiter: RateLimiterOptions;
}

/** A config that does not parse: every issue, one per line, with its path. */
export class OpenClawConfigError extends Error {}

function issues(prefix: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${prefix}${path === '' ? '' : path + ': '}${issue.message}`;
  });
}

/**
 * Settings OpenClaw gives a plugin no way to honour. A concurrency slot is held until the call ends,
 * and the end of an agent run reaches a plugin only through hooks that need conversation access
 * (agent_end, llm_output): each message's prompt is settled as soon as it is admitted instead.
 */
function unsupported(options: RateLimiterOptions): string[] {
  const found: string[] = [];
  for (const name of ['by_user', 'by_tenant'] as const) {
    if (options[name]?.maxConcurrent !== undefined) {
      found.push(`${name}.max_concurrent: not available in OpenClaw (a plugin there cannot see when an agent run ends); use a rate instead`);
    }
  }
  if (options.by_address !== undefined) {
    found.push('by_address: not available in OpenClaw (it limits the HTTP requests a Floodgate gateway serves); limit users with by_user');
  }
  return found;
}

/**
 * The plugin's config (plugins.entries.<id>.config): the host settings above, and every other key is
 * the rate limiter's own, exactly as in Floodgate's config, parsed by the same schema.
 */
export function parseOpenClawOptions(raw: unknown): OpenClawOptions {
  const config = raw === undefined || raw === null ? {} : raw;
  if (typeof config !== 'object' || Array.isArray(config)) throw new OpenClawConfigError('the config must be an object');
  const hostPart: Record<string, unknown> = {};
  const limiterPart: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) (HOST_KEYS.has(key) ? hostPart : limiterPart)[key] = value;
  const host = HostOptions.safeParse(hostPart);
  const limiter = RateLimiterOptions.safeParse(limiterPart);
  const problems = [...(host.success ? [] : issues('', host.error)), ...(limiter.success ? [] : issues('', limiter.error))];
  if (limiter.success) problems.push(...unsupported(limiter.data));
  if (problems.length > 0 || !host.success || !limiter.success) {
    throw new OpenClawConfigError(`invalid rate limiter config:\n  ${problems.join('\n  ')}`);
  }
  return { host: host.data, limiter: limiter.data };
}
