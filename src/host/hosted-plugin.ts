import type { MessageBus } from '../bus/bus.ts';
import type { AdminRoutes } from '../channels/admin.ts';
import type { Clock } from '../clock.ts';
import type { PluginEntry } from '../config/schema.ts';
import { ErrorCode, FloodgateError, errorMessage } from '../errors.ts';
import type { HookHandler, HookRegistration, HookRunner } from '../hooks/runner.ts';
import type { HookName } from '../hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../logger.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { ChatCommands, CommandHandler, CommandOptions } from './commands.ts';
import { pluginContext } from './context.ts';
import type { AdminRouteHandler, HookOptions, PluginInstance } from './plugin.ts';
import { modeOf, type PreparedPlugin } from './prepare.ts';
import type { PluginRoster } from './roster.ts';
import type { ServiceMap, Services } from './services.ts';

/** What the gateway lends a plugin instance, and where what it registers is served. */
export interface HostedPluginDeps {
  runner: HookRunner;
  bus: MessageBus;
  metrics: MetricsRegistry;
  services: Services;
  admin: AdminRoutes;
  commands: ChatCommands;
  logger: Logger;
  clock: Clock;
  identity: IdentityHasher;
}

/** What one plugin instance registered with the gateway, kept whether or not it is served yet. */
export interface Provisions {
  hooks: { hook: HookName; handler: HookHandler<HookName>; options: HookOptions | undefined }[];
  services: Map<keyof ServiceMap, unknown>;
  routes: Map<string, { method: 'GET' | 'POST'; handler: AdminRouteHandler }>;
  commands: Map<string, { handler: CommandHandler; options: CommandOptions | undefined }>;
  /** The instance's own view of the registry: what it leaves there is removed when it stops. */
  metrics: MetricsRegistry;
}

export type HostedState = 'staged' | 'live' | 'gone';

/**
 * One plugin instance and what it registered. Set up on (re)load, it stays staged (set up, not
 * served) until the whole reload has succeeded, so a failed reload has nothing to take back; then
 * it is live (what it registers later is served at once) until it is stopped, and gone after.
 * What it gets at setup, and how what it registers is recorded, is in context.ts.
 */
export class HostedPlugin {
  readonly name: string;
  readonly provided: Provisions;
  private instance: PluginInstance | void = undefined;
  private current: HostedState = 'staged';

  constructor(
    /** What it runs as: what it was started from, then what the last reload it took part in gave it. */
    public prepared: PreparedPlugin,
    private readonly deps: HostedPluginDeps,
    private readonly roster: PluginRoster,
  ) {
    this.name = prepared.entry.name;
    this.provided = { hooks: [], services: new Map(), routes: new Map(), commands: new Map(), metrics: deps.metrics.scope(this.name) };
  }

  /** Staged until its reload commits, live while served, gone once stopped (or never started). */
  get state(): HostedState {
    return this.current;
  }

  /** Whether it takes a new config in place (else a changed config restarts it). */
  get canReconfigure(): boolean {
    return Boolean(this.instance?.reconfigure);
  }

  /** Runs the plugin's setup. One that fails leaves nothing behind, its metrics included, and the error names it. */
  async setUp(): Promise<void> {
    const { entry, definition } = this.prepared;
    try {
      this.instance = await definition.setup(pluginContext(this, this.deps, this.roster));
    } catch (error) {
      // Its hooks, services, routes and commands were never served; its metrics go.
      this.current = 'gone';
      this.provided.metrics.clear();
      if (error instanceof FloodgateError) throw error;
      throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${entry.name}" failed to start: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  /** Its reload committed: its services and routes are served (its hooks come with the runner's new table). */
  serve(): void {
    this.current = 'live';
    const { name, provided } = this;
    for (const [service, value] of provided.services) this.deps.services.provide(name, service, value as never);
    for (const [path, { method, handler }] of provided.routes) this.deps.admin.add(name, method, path, handler);
    for (const [command, { handler, options }] of provided.commands) this.deps.commands.add(name, command, handler, options);
    const { entry, manifest } = this.prepared;
    this.deps.logger
      .child({ plugin: name })
      .info({ mode: modeOf(entry), priority: entry.priority, on_error: entry.on_error, hooks: manifest.available_hooks }, 'plugin loaded');
  }

  /** Stops serving the services, admin routes and commands of this plugin's name. */
  withdraw(): void {
    this.deps.services.withdraw(this.name);
    this.deps.admin.withdraw(this.name);
    this.deps.commands.withdraw(this.name);
  }

  /** Gives the plugin its new config in place; a failure names the plugin. */
  async reconfigure(next: PreparedPlugin): Promise<void> {
    try {
      await this.instance!.reconfigure!({ config: next.config, mode: modeOf(next.entry) });
    } catch (error) {
      throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${this.name}" failed to reconfigure: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  /** A reload failed after reconfiguring it: it gets the config and mode it runs as back (a failure is only logged). */
  async restore(): Promise<void> {
    const { config, entry } = this.prepared;
    try {
      await this.instance?.reconfigure?.({ config, mode: modeOf(entry) });
    } catch (error) {
      this.deps.logger.error(
        { plugin: this.name, err_message: errorMessage(error) },
        'plugin could not take its previous config back; it may run with part of the new one',
      );
    }
  }

  /** Tears the instance down (what it served is already withdrawn) and removes the metrics it left. */
  async stop(): Promise<void> {
    this.current = 'gone';
    try {
      await this.instance?.teardown?.();
    } catch (error) {
      this.deps.logger.error({ plugin: this.name, err_message: errorMessage(error) }, 'plugin teardown failed');
    }
    this.provided.metrics.clear();
  }

  /** Its hooks as the runner takes them, with `entry`'s priority, mode and on_error. */
  registrations(entry: PluginEntry = this.prepared.entry): HookRegistration[] {
    return this.provided.hooks.map(({ hook, handler, options }) => ({
      plugin: this.name,
      hook,
      handler,
      priority: entry.priority,
      mode: modeOf(entry),
      onError: entry.on_error,
      ...options,
    }));
  }
}
