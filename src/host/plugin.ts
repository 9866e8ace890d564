import type { z } from 'zod';
import type { MessageBus } from '../bus/bus.ts';
import type { Clock } from '../clock.ts';
import type { HookHandler } from '../hooks/runner.ts';
import type { HookName } from '../hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../logger.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { RouteRequest, RouteResponse } from '../channels/routes.ts';
import type { CommandHandler, CommandOptions } from './commands.ts';
import type { ServiceMap } from './services.ts';

/** Serves one admin route; the admin token has been checked before it runs. */
export type AdminRouteHandler = (request: RouteRequest) => Promise<RouteResponse>;

/** What a plugin gets at setup. */
export interface PluginContext<Config> {
  /** The name the plugin is listed under in config.json. */
  name: string;
  /** The plugin's validated config: manifest defaults overlaid with config.json's `config`. */
  config: Config;
  /** `permissive` plugins' violations are ignored by the host; plugins use this to say so in logs. */
  mode: 'enforce' | 'permissive';
  logger: Logger;
  clock: Clock;
  /** Salted hashes that may stand for users in logs. */
  identity: IdentityHasher;
  bus: MessageBus;
  /** Served at GET /metrics in the Prometheus text format. Labels must never carry ids. */
  metrics: MetricsRegistry;
  /** What plugins offer each other, by name (see ServiceMap); withdrawn when the provider stops. */
  services: {
    provide<K extends keyof ServiceMap>(name: K, service: ServiceMap[K]): void;
    get<K extends keyof ServiceMap>(name: K): ServiceMap[K] | undefined;
  };
  /**
   * The operator's API: a route under `/v1/admin/` on the HTTP channel, served only when
   * `channels.http.admin_token` is set and only to requests that carry it. Withdrawn when the plugin stops.
   */
  admin: {
    route(method: 'GET' | 'POST', path: string, handler: AdminRouteHandler): void;
  };
  /**
   * Chat commands the plugin answers itself on every channel (`/name args`), before the agent and
   * without any hook: a command costs nothing against any limit. Withdrawn when the plugin stops.
   */
  commands: {
    register(name: string, handler: CommandHandler, options?: CommandOptions): void;
  };
  hooks: {
    /** Registers a handler; the hook must be known and declared in the plugin's manifest. */
    register<N extends HookName>(hook: N, handler: HookHandler<N>, options?: HookOptions): void;
  };
}

export interface HookOptions {
  /**
   * How long the handler may wait its turn (e.g. in a concurrency queue) on top of the host's hook
   * timeout; asked on every call.
   */
  queueMs?: () => number;
}

export interface PluginInstance {
  /** Called once on graceful stop, in reverse setup order. */
  teardown?(): void | Promise<void>;
  /**
   * Takes a new, validated config on reload (SIGHUP) while keeping the plugin's state. Without it, a
   * plugin whose config changed is torn down and set up again.
   */
  reconfigure?(update: { config: unknown; mode: 'enforce' | 'permissive' }): void | Promise<void>;
}

export interface PluginDefinition<Config = unknown> {
  name: string;
  /** Validates the plugin's config at startup; its messages name the field. */
  configSchema: z.ZodType<Config>;
  setup(context: PluginContext<Config>): PluginInstance | void | Promise<PluginInstance | void>;
}

/** Declares a plugin; the module's default export is what config.json's `path` points at. */
export function definePlugin<Config>(definition: PluginDefinition<Config>): PluginDefinition<Config> {
  return definition;
}

export function isPluginDefinition(value: unknown): value is PluginDefinition {
  const candidate = value as Partial<PluginDefinition> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.name === 'string' &&
    typeof candidate.setup === 'function' &&
    typeof (candidate.configSchema as { safeParse?: unknown } | undefined)?.safeParse === 'function'
  );
}
