import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MessageBus } from '../bus/bus.ts';
import type { Clock } from '../clock.ts';
import { formatIssues } from '../config/issues.ts';
import type { PluginEntry } from '../config/schema.ts';
import { ErrorCode, FloodgateError, errorMessage, problemsError } from '../errors.ts';
import type { HookHandler, HookRegistration, HookRunner } from '../hooks/runner.ts';
import type { HookName } from '../hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../logger.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import { readManifest, type PluginManifest } from './manifest.ts';
import type { ServiceMap, Services } from './services.ts';
import type { AdminRoutes } from '../channels/admin.ts';
import { ADMIN_PREFIX } from '../channels/routes.ts';
import {
  isPluginDefinition,
  type AdminRouteHandler,
  type HookOptions,
  type PluginContext,
  type PluginDefinition,
  type PluginInstance,
} from './plugin.ts';

interface PreparedPlugin {
  entry: PluginEntry;
  definition: PluginDefinition;
  manifest: PluginManifest;
  config: unknown;
}

/**
 * What one plugin instance registered with the gateway. Set up on reload, it stays staged (not
 * served) until the whole reload has succeeded, so a failed reload has nothing to take back.
 */
interface Provisions {
  hooks: { hook: HookName; handler: HookHandler<HookName>; options: HookOptions | undefined }[];
  services: Map<keyof ServiceMap, unknown>;
  routes: Map<string, { method: 'GET' | 'POST'; handler: AdminRouteHandler }>;
  /** The instance's own view of the registry: what it leaves there is removed when it stops. */
  metrics: MetricsRegistry;
}

interface RunningPlugin {
  name: string;
  /** What it was started from, to tell on reload whether anything changed. */
  prepared: PreparedPlugin;
  instance: PluginInstance | void;
  provided: Provisions;
  /** Staged until its reload commits, live while served, gone once stopped (or never started). */
  state: 'staged' | 'live' | 'gone';
}

/** What a reload did, plugin by plugin. */
export interface ReloadSummary {
  unchanged: string[];
  /** Reconfigured in place: their state (counters, connections) carried over. */
  reconfigured: string[];
  /** Torn down and set up again (the plugin cannot reconfigure itself): their state starts afresh. */
  restarted: string[];
  added: string[];
  removed: string[];
}

function modeOf(entry: PluginEntry): 'enforce' | 'permissive' {
  return entry.mode === 'permissive' ? 'permissive' : 'enforce';
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface PluginHostDeps {
  runner: HookRunner;
  bus: MessageBus;
  metrics: MetricsRegistry;
  services: Services;
  admin: AdminRoutes;
  logger: Logger;
  clock: Clock;
  identity: IdentityHasher;
  /** config.json's path: plugin paths are relative to its folder, and errors name it. */
  configPath: string;
}

/**
 * Loads the plugins config.json lists, validates each one's manifest and config before any of them
 * starts (every problem of every plugin is reported at once), sets them up in order and tears them
 * down in reverse. Loading and reloading are all or nothing.
 */
export class PluginHost {
  private running: RunningPlugin[] = [];
  /** While a reload applies: the names whose running instance goes, and the instances set up so far. */
  private pending: { leaving: Set<string>; staged: RunningPlugin[] } | undefined;

  constructor(private readonly deps: PluginHostDeps) {}

  get pluginNames(): string[] {
    return this.running.map((p) => p.name);
  }

  /** Starts the listed plugins: all of them, or (one failed) none, the error naming it. */
  async load(entries: readonly PluginEntry[]): Promise<void> {
    await this.reload(entries);
  }

  /**
   * Applies a new plugin list without a restart. Everything is validated first, exactly as at
   * startup: an invalid list throws with every problem and changes nothing. Then new instances are
   * set up (new plugins, and changed ones that cannot reconfigure), staged, and the others
   * reconfigured in place. If any of that throws, the reconfigured ones get their old config back,
   * the new instances are torn down and the error names the plugin: the running set stays as it was.
   * Else everything takes effect in one step (hooks in the new list's order, modes and on_error;
   * services, routes), and the plugins that went are torn down. Messages in flight finish under the
   * registrations they started with.
   */
  async reload(entries: readonly PluginEntry[]): Promise<ReloadSummary> {
    const prepared = await this.prepare(entries);
    const summary: ReloadSummary = { unchanged: [], reconfigured: [], restarted: [], added: [], removed: [] };
    const running = new Map(this.running.map((p) => [p.name, p]));
    const listed = new Set(prepared.map((p) => p.entry.name));
    const leaving = new Set(this.running.filter((p) => !listed.has(p.name)).map((p) => p.name));
    summary.removed.push(...leaving);
    const steps = prepared.map((next) => {
      const current = running.get(next.entry.name);
      const kind = changeOf(current, next);
      if (kind === 'restarted') leaving.add(next.entry.name);
      summary[kind].push(next.entry.name);
      return { next, current, kind };
    });

    const pending = (this.pending = { leaving, staged: [] as RunningPlugin[] });
    /** What was changed so far, in order: undone in reverse if a later step fails. */
    const changed: RunningPlugin[] = [];
    /** The instance each listed plugin will run as. */
    const order: RunningPlugin[] = [];
    try {
      for (const { next, current, kind } of steps) {
        if (kind === 'added' || kind === 'restarted') {
          const started = await this.start(next);
          changed.push(started);
          order.push(started);
          continue;
        }
        if (kind === 'reconfigured') {
          // Undone even if it throws: a reconfigure that failed may have taken part of the new config.
          changed.push(current!);
          await reconfigure(current!, next);
        }
        order.push(current!);
      }
      // The one step of the commit that may refuse (an unknown hook): taken before anything else changes.
      this.deps.runner.replace(registrations(order, prepared));
    } catch (error) {
      await this.rollBack(changed);
      throw error;
    } finally {
      this.pending = undefined;
    }

    // All set up and reconfigured: the rest cannot fail, and takes effect before anything is awaited.
    const gone = this.running.filter((p) => leaving.has(p.name));
    for (const plugin of gone) this.withdrawServed(plugin.name);
    order.forEach((plugin, i) => (plugin.prepared = prepared[i]!));
    for (const plugin of pending.staged) this.serve(plugin);
    this.running = order;
    for (const plugin of gone.reverse()) await this.stop(plugin);
    return summary;
  }

  private async prepare(entries: readonly PluginEntry[]): Promise<PreparedPlugin[]> {
    const problems: string[] = [];
    const prepared: PreparedPlugin[] = [];
    const seen = new Set<string>();
    for (const [index, entry] of entries.entries()) {
      const where = `plugins[${index}] (${entry.name})`;
      if (seen.has(entry.name)) problems.push(`${where}.name: another plugin is already listed as "${entry.name}"`);
      seen.add(entry.name);
      if (!entry.enabled || entry.mode === 'disabled') continue;

      const modulePath = resolve(dirname(this.deps.configPath), entry.path);
      let definition: unknown;
      try {
        definition = ((await import(pathToFileURL(modulePath).href)) as { default?: unknown }).default;
      } catch (error) {
        problems.push(`${where}.path: cannot load ${modulePath} (${errorMessage(error)})`);
        continue;
      }
      if (!isPluginDefinition(definition)) {
        problems.push(`${where}.path: ${modulePath} does not export a plugin (definePlugin(...)) as default`);
        continue;
      }
      const read = readManifest(dirname(modulePath));
      if ('problems' in read) {
        problems.push(...read.problems.map((p) => `${where}: ${p}`));
        continue;
      }
      if (read.manifest.name !== definition.name) {
        problems.push(`${where}: manifest names "${read.manifest.name}" but the module defines "${definition.name}"`);
        continue;
      }
      const raw = { ...read.manifest.default_config, ...entry.config };
      const parsed = definition.configSchema.safeParse(raw, { reportInput: true });
      if (!parsed.success) {
        problems.push(...formatIssues(parsed.error, definition.configSchema, `${where}.config`));
        continue;
      }
      prepared.push({ entry, definition, manifest: read.manifest, config: parsed.data });
    }
    if (problems.length > 0) {
      throw problemsError(ErrorCode.PluginConfig, `${this.deps.configPath}: invalid plugin configuration`, problems);
    }
    return prepared;
  }

  /** Sets up a new instance, staged: what it registers is served only once its reload commits. */
  private async start(prepared: PreparedPlugin): Promise<RunningPlugin> {
    const { entry, definition, manifest, config } = prepared;
    const { bus, clock, identity } = this.deps;
    const provided: Provisions = { hooks: [], services: new Map(), routes: new Map(), metrics: this.deps.metrics.scope(entry.name) };
    const plugin: RunningPlugin = { name: entry.name, prepared, instance: undefined, provided, state: 'staged' };
    // A live plugin's later registrations are served at once; a stopped one's are ignored.
    const services: PluginContext<unknown>['services'] = {
      provide: (name, service) => {
        if (plugin.state === 'gone') return;
        const holder = this.holderOf(plugin, (p) => p.provided.services.has(name));
        if (holder) throw new Error(`service "${String(name)}" is already provided by plugin "${holder.name}"`);
        provided.services.set(name, service);
        if (plugin.state === 'live') this.deps.services.provide(entry.name, name, service);
      },
      // A staged instance sees the services there will be; a live one, those served now.
      get: (name) => {
        const from = plugin.state === 'staged' ? this.nextPlugins() : this.running;
        return from.find((p) => p.provided.services.has(name))?.provided.services.get(name) as ServiceMap[typeof name] | undefined;
      },
    };
    const admin: PluginContext<unknown>['admin'] = {
      route: (method, path, handler) => {
        if (plugin.state === 'gone') return;
        if (!path.startsWith(ADMIN_PREFIX) || path.length === ADMIN_PREFIX.length) {
          throw new Error(`an admin route's path must start with ${ADMIN_PREFIX} and name something: ${path}`);
        }
        const holder = provided.routes.has(path) ? plugin : this.holderOf(plugin, (p) => p.provided.routes.has(path));
        if (holder) throw new Error(`admin route ${path} is already served by plugin "${holder.name}"`);
        provided.routes.set(path, { method, handler });
        if (plugin.state === 'live') this.deps.admin.add(entry.name, method, path, handler);
      },
    };
    const logger = this.deps.logger.child({ plugin: entry.name });
    const mode = modeOf(entry);
    const declared = new Set<string>(manifest.available_hooks);
    const register = <N extends HookName>(hook: N, handler: HookHandler<N>, options?: HookOptions): void => {
      if (!declared.has(hook)) {
        throw new FloodgateError(
          ErrorCode.HookUndeclared,
          `plugin "${entry.name}" registered hook "${hook}", which its manifest does not declare (available_hooks: ${manifest.available_hooks.join(', ')})`,
        );
      }
      if (plugin.state === 'gone') return;
      provided.hooks.push({ hook, handler: handler as HookHandler<HookName>, options });
      if (plugin.state === 'live') this.deps.runner.replace(registrations(this.running));
    };
    this.pending?.staged.push(plugin);
    try {
      plugin.instance = await definition.setup({
        name: entry.name,
        config,
        mode,
        logger,
        clock,
        identity,
        bus,
        metrics: provided.metrics,
        services,
        admin,
        hooks: { register },
      });
    } catch (error) {
      // A plugin that did not start leaves nothing behind: its hooks, services and routes were never
      // served, and its metrics go.
      this.pending?.staged.splice(this.pending.staged.indexOf(plugin), 1);
      plugin.state = 'gone';
      provided.metrics.clear();
      if (error instanceof FloodgateError) throw error;
      throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${entry.name}" failed to start: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    return plugin;
  }

  /** The plugins there will be once the reload under way (if any) commits, staged ones included. */
  private nextPlugins(): RunningPlugin[] {
    const pending = this.pending;
    if (pending === undefined) return this.running;
    return [...this.running.filter((p) => !pending.leaving.has(p.name)), ...pending.staged];
  }

  /**
   * Another plugin of those there will be that holds what `holds` looks for. A plugin's own other
   * instance does not count: the new one takes over from the old at commit.
   */
  private holderOf(plugin: RunningPlugin, holds: (p: RunningPlugin) => boolean): RunningPlugin | undefined {
    return this.nextPlugins().find((p) => p.name !== plugin.name && holds(p));
  }

  /** Makes a staged instance's services and routes served (its hooks come with the runner's new table). */
  private serve(plugin: RunningPlugin): void {
    plugin.state = 'live';
    const { name, provided, prepared } = plugin;
    for (const [service, value] of provided.services) this.deps.services.provide(name, service, value as never);
    for (const [path, { method, handler }] of provided.routes) this.deps.admin.add(name, method, path, handler);
    const { entry, manifest } = prepared;
    this.deps.logger
      .child({ plugin: name })
      .info({ mode: modeOf(entry), priority: entry.priority, on_error: entry.on_error, hooks: manifest.available_hooks }, 'plugin loaded');
  }

  /** A reload failed: in reverse order, new instances are torn down, reconfigured plugins get their config and mode back. */
  private async rollBack(changed: readonly RunningPlugin[]): Promise<void> {
    for (const plugin of [...changed].reverse()) {
      if (plugin.state === 'staged') {
        await this.stop(plugin);
        continue;
      }
      const { config, entry } = plugin.prepared;
      try {
        await plugin.instance?.reconfigure?.({ config, mode: modeOf(entry) });
      } catch (error) {
        this.deps.logger.error(
          { plugin: plugin.name, err_message: errorMessage(error) },
          'plugin could not take its previous config back; it may run with part of the new one',
        );
      }
    }
  }

  /** Tears plugins down in reverse order; one failing teardown does not stop the others. */
  async teardown(): Promise<void> {
    while (this.running.length > 0) {
      const plugin = this.running.pop()!;
      this.deps.runner.unregisterPlugin(plugin.name);
      this.withdrawServed(plugin.name);
      await this.stop(plugin);
    }
  }

  /** Stops serving a plugin's services and admin routes. */
  private withdrawServed(name: string): void {
    this.deps.services.withdraw(name);
    this.deps.admin.withdraw(name);
  }

  /** Tears an instance down (what it served is already withdrawn) and removes the metrics it left. */
  private async stop(plugin: RunningPlugin): Promise<void> {
    plugin.state = 'gone';
    try {
      await plugin.instance?.teardown?.();
    } catch (error) {
      this.deps.logger.error({ plugin: plugin.name, err_message: errorMessage(error) }, 'plugin teardown failed');
    }
    plugin.provided.metrics.clear();
  }
}

/** What a reload does to a listed plugin. */
function changeOf(current: RunningPlugin | undefined, next: PreparedPlugin): Exclude<keyof ReloadSummary, 'removed'> {
  if (current === undefined) return 'added';
  // Another module (its path changed): a new instance of it.
  if (current.prepared.definition !== next.definition) return 'restarted';
  if (sameJson(current.prepared.entry, next.entry) && sameJson(current.prepared.config, next.config)) return 'unchanged';
  return current.instance?.reconfigure ? 'reconfigured' : 'restarted';
}

/** Gives a plugin its new config in place; a failure names the plugin. */
async function reconfigure(plugin: RunningPlugin, next: PreparedPlugin): Promise<void> {
  try {
    await plugin.instance!.reconfigure!({ config: next.config, mode: modeOf(next.entry) });
  } catch (error) {
    throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${plugin.name}" failed to reconfigure: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** The runner's whole table for these plugins, in list order, each with its entry's settings. */
function registrations(plugins: readonly RunningPlugin[], entries: readonly PreparedPlugin[] = plugins.map((p) => p.prepared)): HookRegistration[] {
  return plugins.flatMap((plugin, i) => {
    const { entry } = entries[i]!;
    return plugin.provided.hooks.map(({ hook, handler, options }) => ({
      plugin: plugin.name,
      hook,
      handler,
      priority: entry.priority,
      mode: modeOf(entry),
      onError: entry.on_error,
      ...options,
    }));
  });
}
