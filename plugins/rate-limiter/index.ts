import { CONTINUE, definePlugin, type HookCall, type HookContext, type HookPayload } from '../../src/plugin-sdk.ts';
import { mountLimitsRoutes } from './admin-routes.ts';
import type { PromptRequest } from './engine/limiter.ts';
import { quotaLine, quotaText } from './present/quota-text.ts';
import { mountStatusRoutes } from './status/routes.ts';
import { RateLimiterOptions } from './options.ts';
import { Policy } from './policy.ts';
import { RateLimiter } from './rate-limiter.ts';

export { RateLimiter } from './rate-limiter.ts';
export { RateLimiterOptions } from './options.ts';

/** Which reservation a postPromptFetch settles: one per message and prompt. */
function callId(context: HookContext, promptId: string): string {
  return `${context.channel}\0${context.message_id}\0${promptId}`;
}

/** A prePromptFetch payload as the limiter's request. Its call id is built only if the call is held. */
class PromptCall implements PromptRequest {
  readonly channel: string;
  readonly user: string;
  readonly tenant: string | undefined;
  readonly estimatedTokens: number | undefined;

  constructor(
    private readonly payload: HookPayload<'prePromptFetch'>,
    readonly abort: HookCall | undefined,
  ) {
    this.channel = payload.context.channel;
    this.user = payload.context.user_id;
    this.tenant = payload.context.tenant_id;
    this.estimatedTokens = payload.estimated_tokens;
  }

  get callId(): string {
    return callId(this.payload.context, this.payload.prompt_id);
  }
}

/**
 * Floodgate's adapter: limits prompt fetches and tool calls per user, tenant and tool. It maps each
 * hook's payload to the limiter's request and hands the answer back; no limiter logic lives here.
 * An error inside the limiter reaches the host, whose on_error decides (fail_open by default).
 */
export default definePlugin({
  name: 'rate_limiter',
  configSchema: RateLimiterOptions,
  async setup({ config, hooks, clock, logger, identity, mode, metrics, bus, services, admin, commands }) {
    const limiter = await RateLimiter.open(config, { clock, logger, identity, mode, metrics, bus });
    hooks.register('prePromptFetch', (payload, call) => limiter.prompt(new PromptCall(payload, call)), {
      // A call waiting for a concurrency slot is not a stuck plugin.
      queueMs: () => limiter.queueMs(),
    });
    // Only a call held until its end (a token budget, a concurrency cap) needs to hear how it ended:
    // without such a setting the host is spared a postPromptFetch per message. Once heard, always
    // (a reload that drops the setting may leave calls held from before).
    let hearingEnds = false;
    const hearEnds = (): void => {
      if (hearingEnds) return;
      hearingEnds = true;
      hooks.register('postPromptFetch', (payload) => {
        limiter.promptEnded(callId(payload.context, payload.prompt_id), { outcome: payload.outcome, actualTokens: payload.actual_tokens });
        return CONTINUE;
      });
    };
    if (limiter.holdsPrompts) hearEnds();
    hooks.register('preToolInvoke', (payload) =>
      limiter.tool({ channel: payload.context.channel, user: payload.context.user_id, tenant: payload.context.tenant_id, tool: payload.tool }),
    );
    // Requests before their body is read, by client address: listened to only once by_address is set, so
    // a gateway without it pays nothing per request (a reload that sets it starts listening).
    let listening = false;
    const listenToRequests = (options: RateLimiterOptions): void => {
      if (listening || options.by_address === undefined) return;
      listening = true;
      hooks.register('preRequest', (payload, call) => limiter.request({ address: payload.address, routeGroup: payload.route_group }, call));
      // Answered once the extra charge is recorded (at once in memory), so the client's next request sees it.
      hooks.register('authFailed', (_payload, call) => {
        const recorded = limiter.authFailed(call);
        return recorded === undefined ? CONTINUE : recorded.then(() => CONTINUE);
      });
    };
    listenToRequests(config);
    services.provide('limits', limiter.view);
    mountLimitsRoutes(admin, limiter.view, logger);
    mountStatusRoutes(admin, limiter.status, clock);
    // Asking costs nothing: a command runs no hook, so no limit counts it.
    const reportFor = (who: { channel: string; userId: string; tenantId?: string }) =>
      limiter.view.report({ channel: who.channel, user_id: who.userId, tenant_id: who.tenantId });
    commands.register('limits', async (who) => quotaText(await reportFor(who)), {
      description: 'How many messages and tokens you have left, and when they reset',
      status: async (who) => quotaLine(await reportFor(who)),
    });
    logger.info(
      {
        algorithm: config.algorithm,
        backend: config.backend,
        on_backend_error: config.backend === 'redis' ? config.on_backend_error : undefined,
        by_user: config.by_user?.rates.map((r) => r.source),
        by_tenant: config.by_tenant?.rates.map((r) => r.source),
        by_address: config.by_address ? limiter.addresses.current?.limited().map(([group, rules]) => `${group}: ${rules.map((r) => r.source).join(', ')}`) : undefined,
      },
      'rate limiter ready',
    );
    return {
      async reconfigure(update) {
        const options = update.config as RateLimiterOptions;
        // Before the new settings take effect: their first held call must be heard of.
        if (new Policy(options).holdsPrompts) hearEnds();
        const { kept, newWindows } = await limiter.reconfigure(options, update.mode);
        listenToRequests(options);
        if (!kept) logger.warn('rate limiter reconfigured with another algorithm or backend; counts start afresh');
        else if (newWindows.length === 0) logger.info('rate limiter reconfigured; every count kept');
        else logger.info({ new_windows: newWindows }, 'rate limiter reconfigured; counts kept, new windows count from now');
      },
      teardown: () => limiter.close(),
    };
  },
});
