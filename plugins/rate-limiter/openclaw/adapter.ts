import { createLogger, errorMessage, IdentityHasher, KeyedThrottle, systemClock, type Clock, type HookResult, type Logger, type Violation } from '../../../src/plugin-sdk.ts';
import { humanDuration } from '../present/reply.ts';
import { RateLimiter } from '../rate-limiter.ts';
import { parseOpenClawOptions, type OpenClawOptions } from './options.ts';

/**
 * The OpenClaw adapter: maps OpenClaw's hook events to the rate limiter's requests and its answers
 * back to OpenClaw's hook results. No limiter logic lives here.
 *
 * The types below are the parts of OpenClaw's own hook types (openclaw/plugin-sdk, 2026.9.6) this
 * adapter reads, so that it type-checks and is tested without OpenClaw installed; the entry
 * (index.ts) hands it OpenClaw's events, checked against OpenClaw's types in test/hosts/openclaw.
 */

/** before_dispatch: an inbound message, before the model sees it. */
export interface DispatchEvent {
  messageId?: string;
  content: string;
  body?: string;
  channel?: string;
  sessionKey?: string;
  senderId?: string;
  isGroup?: boolean;
}

export interface DispatchContext {
  messageId?: string;
  channelId?: string;
  accountId?: string;
  conversationId?: string;
  sessionKey?: string;
  senderId?: string;
}

/** `handled: true` skips the model; `text`, when present, is sent as the final reply. */
export interface DispatchResult {
  handled: boolean;
  text?: string;
}

/** before_tool_call: a tool call the model asked for, before it runs. */
export interface ToolCallEvent {
  toolName: string;
  params: Record<string, unknown>;
}

export interface ToolCallContext {
  sessionKey?: string;
  channelId?: string;
  /** Who sent the message whose run calls the tool; absent for runs no message started (cron, heartbeats). */
  requester?: { readonly channel?: string; readonly accountId?: string; readonly senderId?: string };
}

/** `block: true` stops the call; the model reads `blockReason` as the tool's result. */
export interface ToolCallResult {
  block?: boolean;
  blockReason?: string;
}

/** What the adapter writes its lines to: OpenClaw's plugin logger. */
export interface HostLogger {
  debug?: (message: string) => void;
  info: (message: string) => void;
  warn: (message: string) => void;
  error: (message: string) => void;
}

/** Who a request is from, as the limiter names them. */
export interface Requester {
  channel: string;
  user: string;
  tenant: string | undefined;
}

/**
 * OpenClaw's sender as the limiter's user: the channel account and the sender together (two bot
 * accounts on one channel are two audiences). A message without a sender is the channel's anonymous
 * user ('').
 */
export function userId(accountId: string | undefined, senderId: string | undefined): string {
  return senderId === undefined || senderId === '' ? '' : `${accountId ?? 'default'}:${senderId}`;
}

/** A group chat is a tenant: its members share by_tenant. Tenants span channels, so the id names its channel. */
export function groupTenant(channel: string, accountId: string | undefined, conversationId: string | undefined): string | undefined {
  return conversationId === undefined || conversationId === '' ? undefined : `${channel}:${accountId ?? 'default'}:${conversationId}`;
}

export function dispatchRequester(event: DispatchEvent, ctx: DispatchContext): Requester {
  const channel = ctx.channelId ?? event.channel ?? 'openclaw';
  return {
    channel,
    user: userId(ctx.accountId, ctx.senderId ?? event.senderId),
    tenant: event.isGroup === true ? groupTenant(channel, ctx.accountId, ctx.conversationId) : undefined,
  };
}

export function toolRequester(ctx: ToolCallContext, tenant: string | undefined): Requester {
  const requester = ctx.requester;
  return { channel: requester?.channel ?? ctx.channelId ?? 'openclaw', user: userId(requester?.accountId, requester?.senderId), tenant };
}

/** The estimate Floodgate's agent makes: the prompt's tokens (one per four characters) and an answer as long. */
export function estimateTokens(text: string): number {
  return 2 * Math.max(1, Math.ceil(text.length / 4));
}

const WHOSE: Record<string, string> = { tool: "this tool's per-user limit", user: 'the per-user limit', tenant: "the group's limit" };

/** What the model reads when a tool call is refused: which limit, and when to try again. Never an id. */
export function toolBlockReason(tool: string, violation: Violation): string {
  const retry = violation.retryAfter === undefined ? '' : ` Retry in ${humanDuration(violation.retryAfter)}, not before.`;
  if (violation.code === 'rate_limited') {
    const { rule, limit } = violation.details as { rule?: string; limit?: string };
    const which = (rule !== undefined && WHOSE[rule]) || 'a rate limit';
    return `Rate limited: the ${tool} tool call was not run, because it is over ${which} (${limit ?? 'limit'}).${retry}`;
  }
  return `Rate limiter: the ${tool} tool call was not run (${violation.reason}).${retry}`;
}

const FAIL_CLOSED_TOOL_REASON = 'Rate limiter unavailable: the tool call was not run. Try again shortly.';
/** A broken limiter says so once per hook every 10 s: it fails on every message. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** Names this plugin's lines in OpenClaw's log, whose plugin lines share one subsystem. */
export const LOG_PREFIX = '[floodgate-rate-limiter] ';

/** The limiter's pino lines, forwarded to OpenClaw's logger as "[floodgate-rate-limiter] message {fields}". */
function hostDestination(log: HostLogger): { write(line: string): void } {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        log.info(LOG_PREFIX + line.trimEnd());
        return;
      }
      const { level, msg, time: _time, pid: _pid, hostname: _hostname, service: _service, ...fields } = record;
      const text = LOG_PREFIX + (Object.keys(fields).length === 0 ? String(msg ?? '') : `${String(msg ?? '')} ${JSON.stringify(fields)}`);
      const n = typeof level === 'number' ? level : 30;
      if (n >= 50) log.error(text);
      else if (n >= 40) log.warn(text);
      else if (n >= 30) log.info(text);
      else log.debug?.(text);
    },
  };
}

/** A bounded map, oldest first out: the tenant each session last spoke for. */
class Recent {
  private readonly map = new Map<string, string | undefined>();
  constructor(private readonly capacity: number) {}
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  set(key: string, value: string | undefined): void {
    if (this.map.get(key) === value && this.map.has(key)) return;
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }
}

type Answer = HookResult | 'failed';

/**
 * One rate limiter for one config, and what goes with it. OpenClaw loads a plugin module more than
 * once (a "full" and a "discovery" registration) and hands events to the hooks of every copy, so the
 * state lives here, once per config in the process, and every copy's hooks share it.
 */
export class OpenClawRateLimiter {
  readonly options: OpenClawOptions;
  private limiter: Promise<RateLimiter> | undefined;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly tenants: Recent;
  private readonly usesTenants: boolean;
  private readonly errorLog = new KeyedThrottle(16);
  private calls = 0;
  private registrations = 0;

  constructor(
    options: OpenClawOptions,
    private readonly host: { logger: HostLogger; clock?: Clock; open?: (logger: Logger, clock: Clock) => Promise<RateLimiter> },
  ) {
    this.options = options;
    this.clock = host.clock ?? systemClock;
    this.logger = createLogger({ level: 'info', destination: hostDestination(host.logger) });
    this.tenants = new Recent(options.limiter.max_keys);
    this.usesTenants = options.limiter.by_tenant !== undefined || options.limiter.exempt_tenants.length > 0;
  }

  /**
   * One more registration of the plugin's hooks (OpenClaw registers a module once per registration
   * mode, and every copy's hooks receive events): each shares this limiter.
   */
  registered(mode: string | undefined): void {
    this.registrations += 1;
    this.logger.info({ registration_mode: mode, registrations: this.registrations }, 'hooks registered; this config shares one limiter');
  }

  /** The limiter, opened on first use: a registration that never sees an event (a CLI's) connects nowhere. */
  private open(): Promise<RateLimiter> {
    if (this.limiter === undefined) {
      const { limiter: options, host } = this.options;
      const opened = this.host.open
        ? this.host.open(this.logger, this.clock)
        : RateLimiter.open(options, { clock: this.clock, logger: this.logger, identity: new IdentityHasher(), mode: host.mode });
      this.limiter = opened.then((limiter) => {
        this.logger.info(
          {
            algorithm: options.algorithm,
            backend: options.backend,
            on_backend_error: options.backend === 'redis' ? options.on_backend_error : undefined,
            by_user: options.by_user?.rates.map((r) => r.source),
            by_tenant: options.by_tenant?.rates.map((r) => r.source),
            by_tool: Object.keys(options.by_tool),
            mode: host.mode,
            on_error: host.on_error,
          },
          'rate limiter ready',
        );
        return limiter;
      });
      // A limiter that failed to open is tried again on the next event.
      this.limiter.catch(() => {
        this.limiter = undefined;
      });
    }
    return this.limiter;
  }

  /**
   * A group is named as the tenant only when the config has tenant rules: the limiter keeps a user
   * who names a tenant under that tenant's keys, so naming the group always would give a member a
   * by_user count per group and another for private chats.
   */
  private withTenant(requester: Requester): Requester {
    return this.usesTenants ? requester : { ...requester, tenant: undefined };
  }

  /** The limiter's answer, or 'failed' when it threw or took longer than timeout_ms. */
  private async decide(hook: string, ask: (limiter: RateLimiter) => HookResult | Promise<HookResult>): Promise<Answer> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = this.open().then(ask);
      const timeoutMs = this.options.host.timeout_ms;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no decision within ${timeoutMs} ms`)), timeoutMs);
      });
      return await Promise.race([answer, timeout]);
    } catch (error) {
      this.failed(hook, error);
      return 'failed';
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(hook: string, error: unknown): void {
    if (!this.errorLog.pass(hook, this.clock.now(), ERROR_LOG_INTERVAL_MS)) return;
    const closed = this.failsClosed();
    this.logger.error(
      { hook, on_error: this.options.host.on_error, err_message: errorMessage(error) },
      closed ? 'rate limiter failed; refused (fail_closed)' : 'rate limiter failed; let through (fail_open)',
    );
  }

  /** A permissive limiter never blocks traffic, not even when it fails (as in Floodgate). */
  private failsClosed(): boolean {
    return this.options.host.on_error === 'fail_closed' && this.options.host.mode === 'enforce';
  }

  /**
   * A message: decided as one prompt of its sender's. Refused, it is answered with the friendly reply
   * (once per cooldown, then silently) and the model never sees it. The prompt is settled at once:
   * a plugin cannot see the end of the agent run it starts without conversation access, so a token
   * window counts each message's estimate.
   */
  async beforeDispatch(event: DispatchEvent, ctx: DispatchContext): Promise<DispatchResult | undefined> {
    const requester = this.withTenant(dispatchRequester(event, ctx));
    const session = ctx.sessionKey ?? event.sessionKey;
    if (session !== undefined && this.usesTenants) this.tenants.set(session, requester.tenant);
    const callId = `${requester.channel}\0${ctx.messageId ?? event.messageId ?? ''}\0${++this.calls}`;
    const answer = await this.decide('before_dispatch', (limiter) =>
      limiter.prompt({ ...requester, callId, estimatedTokens: estimateTokens(event.body ?? event.content ?? '') }),
    );
    if (answer === 'failed') {
      return this.failsClosed() ? { handled: true, text: this.options.limiter.unavailable_message } : undefined;
    }
    if (answer.continue) {
      this.limiter?.then((limiter) => limiter.promptEnded(callId, { outcome: 'completed' })).catch(() => {});
      return undefined;
    }
    if (this.options.host.mode === 'permissive') return undefined;
    return answer.violation.silent ? { handled: true } : { handled: true, text: answer.violation.description };
  }

  /** A tool call: decided against by_tool (or by_user) and the group's by_tenant; refused, the model reads why. */
  async beforeToolCall(event: ToolCallEvent, ctx: ToolCallContext): Promise<ToolCallResult | undefined> {
    const tenant = ctx.sessionKey === undefined ? undefined : this.tenants.get(ctx.sessionKey);
    const requester = toolRequester(ctx, tenant);
    const answer = await this.decide('before_tool_call', (limiter) => limiter.tool({ ...requester, tool: event.toolName }));
    if (answer === 'failed') return this.failsClosed() ? { block: true, blockReason: FAIL_CLOSED_TOOL_REASON } : undefined;
    if (answer.continue || this.options.host.mode === 'permissive') return undefined;
    return { block: true, blockReason: toolBlockReason(event.toolName, answer.violation) };
  }

  async close(): Promise<void> {
    const limiter = this.limiter;
    this.limiter = undefined;
    if (limiter) await limiter.then((l) => l.close(), () => {});
  }
}

/** Where the process keeps its limiters: one per distinct config, shared by every copy of this module. */
const REGISTRY = Symbol.for('floodgate.openclaw.rate-limiters');

function registry(): Map<string, OpenClawRateLimiter> {
  const holder = globalThis as { [REGISTRY]?: Map<string, OpenClawRateLimiter> };
  return (holder[REGISTRY] ??= new Map());
}

/** JSON with sorted keys: one config is one key however its object was built. */
export function configKey(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * The process's limiter for this config: made by the first registration that names it, shared by
 * every later one. Throws an OpenClawConfigError, saying every problem, when the config is invalid.
 */
export function sharedLimiter(rawConfig: unknown, logger: HostLogger): OpenClawRateLimiter {
  const key = configKey(rawConfig ?? {});
  const limiters = registry();
  let shared = limiters.get(key);
  if (shared === undefined) {
    shared = new OpenClawRateLimiter(parseOpenClawOptions(rawConfig), { logger });
    limiters.set(key, shared);
  }
  return shared;
}

/** Closes and forgets the process's limiter for this config (the gateway stops); later calls find none. */
export async function closeSharedLimiter(rawConfig: unknown): Promise<void> {
  const key = configKey(rawConfig ?? {});
  const limiters = registry();
  const shared = limiters.get(key);
  if (shared === undefined) return;
  limiters.delete(key);
  await shared.close();
}
