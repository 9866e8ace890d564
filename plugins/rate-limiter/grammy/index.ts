import type { Context, MiddlewareFn, NextFunction } from 'grammy';
import {
  closest,
  createLogger,
  errorMessage,
  IdentityHasher,
  KeyedThrottle,
  systemClock,
  type Clock,
  type HookResult,
  type Logger,
  type Violation,
} from '../../../src/plugin-sdk.ts';
import { RateLimiterOptions } from '../options.ts';
import { RateLimiter } from '../rate-limiter.ts';

/**
 * The channel a Floodgate gateway's Telegram webhook counts its users on: the same user is then the
 * same key here and there (`{telegram:<from.id>}`), so a bot and a gateway on one Redis share one limit.
 */
const CHANNEL = 'telegram';
const LOG_INTERVAL_MS = 10_000;

/** What a handler behind the middleware finds on `ctx.floodgate`. */
export interface FloodgateControl {
  /**
   * Reports tokens the handler used (a model call's prompt and answer); adds up over several calls.
   * Settled against the token budgets once the handler is done.
   */
  report(tokens: number): void;
  /** The rate-limit headers of the admission (`X-RateLimit-Remaining`, ...), as the gateway would send them. */
  readonly headers: Readonly<Record<string, string>> | undefined;
}

/** The context flavor: `type MyContext = Context & FloodgateFlavor`. */
export interface FloodgateFlavor {
  floodgate: FloodgateControl;
}

/** Settings of the host around the limiter: what a Floodgate gateway's plugin entry and `log` section say. */
export interface FloodgateHostOptions<C extends Context = Context> {
  /** Log lines of the limiter (refusals, Redis state, limiter errors); default: Floodgate's JSON logger on stdout. */
  logger?: Logger;
  /** `enforce` (default) refuses; `permissive` lets everything through and only logs what it would refuse. */
  mode?: 'enforce' | 'permissive';
  /** An unexpected limiter error: `fail_open` (default: the update is handled) or `fail_closed` (it is thrown at the bot). */
  on_error?: 'fail_open' | 'fail_closed';
  /** Salt of the hashes that stand for users in log lines (a gateway's `log.identity_salt`); random when unset. */
  identity_salt?: string;
  /**
   * The tenant of an update. Default `"none"`, as a Floodgate gateway's Telegram channel: a user has one
   * limit in every chat, and the same key as on a gateway. `"group"`: the group or supergroup chat is the
   * tenant, so `by_tenant` caps a whole group (a user's limit is then per group, and no longer shared
   * with a gateway). Or a function of the update.
   */
  tenant?: 'none' | 'group' | ((ctx: C) => string | number | undefined);
  /** The tokens an update is expected to cost, reserved in the token budgets before the handler runs; default 1. */
  estimateTokens?: (ctx: C) => number | undefined;
  clock?: Clock;
}

export type FloodgateMiddleware<C extends Context = Context> = MiddlewareFn<C> & {
  /** Resolves once the backend is open (Redis connected, or running on its failure policy). */
  readonly ready: Promise<void>;
  /** Closes the backend (the Redis connection). */
  close(): Promise<void>;
};

/** The limiter's options checked as a gateway checks them, every problem named (a misspelt field with a hint). */
function parseOptions(options: unknown): RateLimiterOptions {
  const parsed = RateLimiterOptions.safeParse(options);
  if (parsed.success) return parsed.data;
  const fields = Object.keys(RateLimiterOptions.shape);
  const problems = parsed.error.issues.flatMap((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(options)';
    if (issue.code !== 'unrecognized_keys' || issue.path.length > 0) return [`${where}: ${issue.message}`];
    return issue.keys.map((key) => {
      const hint = closest(key, fields);
      return `${key}: unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`;
    });
  });
  throw new TypeError(`floodgate: invalid options: ${problems.join('; ')}`);
}

/** The command a message starts with, as grammY's `bot.command` reads it; none when it is addressed to another bot. */
function commandOf(ctx: Context): string | undefined {
  const message = ctx.message;
  if (message === undefined) return undefined;
  const text = message.text ?? message.caption;
  const entity = (message.entities ?? message.caption_entities)?.find((e) => e.type === 'bot_command' && e.offset === 0);
  if (text === undefined || entity === undefined) return undefined;
  const [name, target] = text.substring(1, entity.length).split('@', 2) as [string, string | undefined];
  const me = (ctx as { me?: { username?: string } }).me?.username;
  if (target !== undefined && me !== undefined && target.toLowerCase() !== me.toLowerCase()) return undefined;
  return name === '' ? undefined : name;
}

function tenantOf<C extends Context>(ctx: C, choice: FloodgateHostOptions<C>['tenant']): string | undefined {
  if (choice === undefined || choice === 'none') return undefined;
  if (choice === 'group') {
    const chat = ctx.chat;
    return chat !== undefined && (chat.type === 'group' || chat.type === 'supergroup') ? String(chat.id) : undefined;
  }
  const tenant = choice(ctx);
  return tenant === undefined ? undefined : String(tenant);
}

/**
 * Tells the user, once per cooldown: a reply to their message, or the answer to their button press.
 * Other updates (reactions, inline queries, member changes) have nothing to answer: they go quiet.
 */
async function tell(ctx: Context, text: string): Promise<void> {
  if (ctx.callbackQuery !== undefined) {
    await ctx.answerCallbackQuery({ text });
    return;
  }
  const replyTo = ctx.msgId;
  if (ctx.chat === undefined || replyTo === undefined) return;
  await ctx.reply(text, { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } });
}

/**
 * Floodgate's rate limiter as grammY middleware: `bot.use(floodgate({ by_user: "30/m" }))`. The same
 * options as the gateway's rate_limiter plugin (README), the same engine and, on Redis, the same keys.
 *
 * Every update with a sender (`ctx.from`) is a prompt fetch of that user; a message that starts with a
 * bot command is also a call of the tool of that name (`by_tool`). A refused update never reaches the
 * next middleware: the user is told once per cooldown, and nothing is sent for the rest. The handler's
 * end settles the update's token reservation (`ctx.floodgate.report(tokens)` says what it used).
 * Updates without a sender (channel posts, polls) pass uncounted. This adapter only maps; the
 * limiter decides.
 */
export function floodgate<C extends Context = Context>(options: unknown, host: FloodgateHostOptions<C> = {}): FloodgateMiddleware<C> {
  const config = parseOptions(options);
  const clock = host.clock ?? systemClock;
  const logger = host.logger ?? createLogger();
  const mode = host.mode ?? 'enforce';
  const failClosed = host.on_error === 'fail_closed';
  // This adapter's own log lines go by wall time, whatever clock the limiter is given.
  const logged = new KeyedThrottle(16);
  const logAllowed = (what: string): boolean => logged.pass(what, systemClock.now(), LOG_INTERVAL_MS);
  let calls = 0;

  const opening = RateLimiter.open(config, { clock, logger, identity: new IdentityHasher(host.identity_salt), mode });
  // Awaited by every update; a failure to open is a limiter error like any other (see on_error).
  opening.catch(() => undefined);
  let limiter: RateLimiter | undefined;
  const ready = opening.then((opened) => {
    limiter = opened;
    if (config.by_tenant !== undefined && (host.tenant === undefined || host.tenant === 'none')) {
      logger.warn('floodgate: by_tenant is set but updates name no tenant (set the tenant option): it limits nothing');
    }
    if (config.by_address !== undefined) {
      logger.warn('floodgate: by_address limits the HTTP requests a Floodgate gateway serves; a bot has none, so it limits nothing here');
    }
    logger.info({ algorithm: config.algorithm, backend: config.backend, mode }, 'floodgate ready for grammY');
  });
  ready.catch(() => undefined);

  /** A limiter error: logged at most once per 10 s; thrown at the bot only under fail_closed. */
  const failed = (error: unknown): void => {
    if (logAllowed('error')) {
      logger.error(
        { on_error: failClosed ? 'fail_closed' : 'fail_open', err_message: errorMessage(error) },
        failClosed ? 'rate limiter failed; update refused (fail_closed)' : 'rate limiter failed; update let through (fail_open)',
      );
    }
    if (failClosed) throw error;
  };

  const refused = async (ctx: C, violation: Violation): Promise<void> => {
    if (violation.silent === true) return;
    try {
      await tell(ctx, violation.description);
    } catch (error) {
      // The refusal stands; a reply that could not be sent (the bot was blocked, ...) is no bot error.
      if (logAllowed('reply')) {
        logger.warn({ code: violation.code, err_message: errorMessage(error) }, 'floodgate could not send the slow-down reply');
      }
    }
  };

  /** The limiter's answer, or undefined when it failed open. A refusal under permissive mode is no refusal. */
  const decide = async (ask: () => HookResult | Promise<HookResult>): Promise<HookResult | undefined> => {
    try {
      const asked = ask();
      const result = asked instanceof Promise ? await asked : asked;
      return mode === 'permissive' ? { continue: true, headers: result.continue ? result.headers : undefined } : result;
    } catch (error) {
      failed(error);
      return undefined;
    }
  };

  const middleware = async (ctx: C, next: NextFunction): Promise<void> => {
    const from = ctx.from;
    if (from === undefined) return next();
    if (limiter === undefined) {
      try {
        await ready;
      } catch (error) {
        failed(error);
        return next();
      }
    }
    const running = limiter!;
    const user = String(from.id);
    // The bot's own functions: what they throw is the bot's, not the limiter's.
    const tenant = tenantOf(ctx, host.tenant);
    const estimatedTokens = host.estimateTokens?.(ctx);
    const callId = `grammy\0${++calls}`;
    const prompt = await decide(() => running.prompt({ channel: CHANNEL, user, tenant, callId, estimatedTokens }));
    if (prompt?.continue === false) return refused(ctx, prompt.violation);
    const command = commandOf(ctx);
    let headers = prompt?.headers;
    if (command !== undefined) {
      let tool: HookResult | undefined;
      try {
        tool = await decide(() => running.tool({ channel: CHANNEL, user, tenant, tool: command }));
      } catch (error) {
        running.promptEnded(callId, { outcome: 'cancelled' });
        throw error;
      }
      if (tool?.continue === false) {
        // The handler never runs: what the update reserved is given back.
        running.promptEnded(callId, { outcome: 'cancelled' });
        return refused(ctx, tool.violation);
      }
      if (tool?.headers !== undefined) headers = { ...headers, ...tool.headers };
    }
    let used: number | undefined;
    (ctx as C & FloodgateFlavor).floodgate = {
      report(tokens: number) {
        if (!Number.isFinite(tokens) || tokens < 0) throw new RangeError('floodgate: report() takes a number of tokens, 0 or more');
        used = (used ?? 0) + Math.ceil(tokens);
      },
      headers,
    };
    let outcome: 'completed' | 'failed' = 'failed';
    try {
      await next();
      outcome = 'completed';
    } finally {
      try {
        running.promptEnded(callId, used === undefined ? { outcome } : { outcome, actualTokens: used });
      } catch (error) {
        // Settling never costs the bot its update: logged like any limiter error, never thrown over the handler's own.
        if (logAllowed('error')) logger.error({ err_message: errorMessage(error) }, 'rate limiter failed to settle an update');
      }
    }
  };

  return Object.assign(middleware, {
    ready,
    async close(): Promise<void> {
      const opened = await opening.catch(() => undefined);
      await opened?.close();
    },
  });
}

export default floodgate;
