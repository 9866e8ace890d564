import rateLimiterPlugin from '../../../plugins/rate-limiter/index.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { MessageBus } from '../../../src/bus/bus.ts';
import { systemClock, type Clock } from '../../../src/clock.ts';
import type { HookHandler } from '../../../src/hooks/runner.ts';
import type { HookContext, HookName, HookResult } from '../../../src/hooks/schemas.ts';
import type { RouteGroup } from '../../../src/channels/routes.ts';
import type { CommandHandler } from '../../../src/host/commands.ts';
import type { HookOptions, PluginContext } from '../../../src/host/plugin.ts';
import type { LimitsAdmin, LimitsQuery } from '../../../plugins/rate-limiter/view.ts';
import { createLogger, IdentityHasher } from '../../../src/logger.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { CapturedLog } from './helpers.ts';

/** One call of a user, as the orchestrator makes it: prePromptFetch, then (maybe) postPromptFetch. */
export interface Call {
  context: HookContext;
  signal: AbortSignal;
  abort(): void;
}

export interface CallOptions {
  user?: string;
  tenant?: string;
  estimatedTokens?: number;
}

/** The rate-limiter plugin set up as the host would, with every hook it registers callable. */
export interface Harness {
  begin(options?: CallOptions): { call: Call; result: Promise<HookResult> };
  /** prePromptFetch alone (no signal, nothing held beyond the decision). */
  prompt(options?: CallOptions): Promise<HookResult>;
  end(call: Call, outcome: 'completed' | 'failed' | 'cancelled', actualTokens?: number): Promise<HookResult>;
  tool(tool: string, options?: CallOptions): Promise<HookResult>;
  limits(query: Partial<LimitsQuery>): Promise<unknown>;
  /** preRequest for a request from `address` to `routeGroup` (default messages); `call` is what authFailed is told with. */
  request(address: string | undefined, routeGroup?: RouteGroup, call?: object): Promise<HookResult>;
  authFailed(call: object, address?: string, routeGroup?: RouteGroup): Promise<HookResult>;
  addressLimits(address: string): Promise<unknown>;
  resetAddress(address: string): Promise<unknown>;
  /** The hooks the plugin has registered so far. */
  hooks(): HookName[];
  reconfigure(config: Record<string, unknown>, mode?: 'enforce' | 'permissive'): Promise<void>;
  /** A chat command the plugin registered, asked by `user` (default alice) on the http channel. */
  command(name: string, options?: CallOptions): Promise<string>;
  queueMs(): number;
  log: CapturedLog;
  bus: MessageBus;
  metrics: MetricsRegistry;
  teardown(): Promise<void>;
}

let messages = 0;

export async function startHarness(
  config: Record<string, unknown>,
  clock: Clock = systemClock,
  mode: 'enforce' | 'permissive' = 'enforce',
): Promise<Harness> {
  const log = new CapturedLog();
  const bus = new MessageBus();
  const metrics = new MetricsRegistry();
  const handlers = new Map<HookName, { handler: HookHandler<HookName>; options?: HookOptions }>();
  let admin: LimitsAdmin | undefined;
  const commands = new Map<string, CommandHandler>();
  const context: PluginContext<RateLimiterOptions> = {
    name: 'rate_limiter',
    config: RateLimiterOptions.parse(config),
    mode,
    logger: createLogger({ destination: log }),
    clock,
    identity: new IdentityHasher('test-salt'),
    bus,
    metrics,
    services: {
      provide: (_name, service) => {
        admin = service;
      },
      get: () => undefined,
    },
    // The admin routes are served by a real gateway in the e2e tests; here the view is called directly.
    admin: { route: () => undefined },
    commands: {
      register(name, handler) {
        commands.set(name, handler);
      },
    },
    hooks: {
      register(hook, handler, options) {
        handlers.set(hook, { handler: handler as HookHandler<HookName>, options });
      },
    },
  };
  const instance = await rateLimiterPlugin.setup(context);
  const hookContext = (options: CallOptions): HookContext => ({
    message_id: `m-${++messages}`,
    channel: 'http',
    user_id: options.user ?? 'alice',
    ...(options.tenant === undefined ? {} : { tenant_id: options.tenant }),
    conversation_id: 'c-1',
  });
  const run = async (hook: HookName, payload: unknown, signal?: AbortSignal): Promise<HookResult> =>
    (handlers.get(hook)!.handler as (p: unknown, c: { signal: AbortSignal | undefined }) => HookResult | Promise<HookResult>)(payload, {
      signal,
    });
  const promptPayload = (ctx: HookContext, options: CallOptions) => ({
    prompt_id: 'chat',
    text: 'hi',
    ...(options.estimatedTokens === undefined ? {} : { estimated_tokens: options.estimatedTokens }),
    context: ctx,
  });
  return {
    begin(options = {}) {
      const controller = new AbortController();
      const call: Call = { context: hookContext(options), signal: controller.signal, abort: () => controller.abort() };
      return { call, result: run('prePromptFetch', promptPayload(call.context, options), controller.signal) };
    },
    prompt: (options = {}) => run('prePromptFetch', promptPayload(hookContext(options), options)),
    // As the host does, a call's end is told only to a plugin that listens for it.
    end: async (call, outcome, actualTokens) => {
      if (!handlers.has('postPromptFetch')) return { continue: true };
      return run('postPromptFetch', {
        prompt_id: 'chat',
        outcome,
        ...(actualTokens === undefined ? {} : { actual_tokens: actualTokens }),
        context: call.context,
      });
    },
    tool: (tool, options = {}) => run('preToolInvoke', { tool, args: {}, context: hookContext(options) }),
    limits: (query) => admin!.inspect({ channel: 'http', user_id: 'alice', ...query } as LimitsQuery),
    request: async (address, routeGroup = 'messages', call = {}) =>
      (handlers.get('preRequest')!.handler as (p: unknown, c: object) => HookResult | Promise<HookResult>)(
        { ...(address === undefined ? {} : { address }), route_group: routeGroup, method: 'POST', path: '/x' },
        call,
      ),
    authFailed: async (call, address, routeGroup = 'admin') =>
      (handlers.get('authFailed')!.handler as (p: unknown, c: object) => HookResult | Promise<HookResult>)(
        { ...(address === undefined ? {} : { address }), route_group: routeGroup, method: 'GET', path: '/x' },
        call,
      ),
    addressLimits: (address) => admin!.inspectAddress(address),
    resetAddress: (address) => admin!.resetAddress(address),
    hooks: () => [...handlers.keys()],
    reconfigure: async (next, nextMode = mode) => {
      await instance?.reconfigure?.({ config: RateLimiterOptions.parse(next), mode: nextMode });
    },
    command: async (name, options = {}) =>
      commands.get(name)!({ channel: 'http', userId: options.user ?? 'alice', tenantId: options.tenant, conversationId: 'c-1', args: '' }),
    queueMs: () => handlers.get('prePromptFetch')!.options?.queueMs?.() ?? 0,
    log,
    bus,
    metrics,
    teardown: async () => {
      await instance?.teardown?.();
    },
  };
}
