import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MessageBus } from '../bus/bus.ts';
import type { Clock } from '../clock.ts';
import { formatIssues } from '../config/issues.ts';
import type { PluginEntry } from '../config/schema.ts';
import { ErrorCode, FloodgateError, errorMessage, problemsError } from '../errors.ts';
import type { HookHandler, HookRunner } from '../hooks/runner.ts';
import type { HookName } from '../hooks/schemas.ts';
import type { IdentityHasher, Logger } from '../logger.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import { readManifest, type PluginManifest } from './manifest.ts';
import type { Services } from './services.ts';
import type { AdminRoutes } from '../channels/admin.ts';
import { isPluginDefinition, type HookOptions, type PluginContext, type PluginDefinition, type PluginInstance } from './plugin.ts';

interface PreparedPlugin {
  entry: PluginEntry;
  definition: PluginDefinition;
  manifest: PluginManifest;
  config: unknown;
}

interface RunningPlugin {
  name: string;
  /** What it was started from, to tell on reload whether anything changed. */
  prepared: PreparedPlugin;
  instance: PluginInstance | void;
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
 * down in reverse.
 */
export class PluginHost {
  private readonly running: RunningPlugin[] = [];

  constructor(private readonly deps: PluginHostDeps) {}

  get pluginNames(): string[] {
    return this.running.map((p) => p.name);
  }

  async load(entries: readonly PluginEntry[]): Promise<void> {
    const prepared = await this.prepare(entries);
    try {
      for (const plugin of prepared) await this.setup(plugin);
    } catch (error) {
      await this.teardown();
      throw error;
    }
  }

  /**
   * Applies a new plugin list without a restart. Everything is validated first, exactly as at
   * startup: an invalid list throws with every problem and changes nothing. Then plugins that are gone
   * are torn down, changed ones reconfigured in place (or restarted when they cannot be), new ones set
   * up, and hook order, modes and on_error follow the new list. Messages in flight finish under the
   * registrations they started with.
   */
  async reload(entries: readonly PluginEntry[]): Promise<ReloadSummary> {
    const prepared = await this.prepare(entries);
    const summary: ReloadSummary = { unchanged: [], reconfigured: [], restarted: [], added: [], removed: [] };
    const wanted = new Map(prepared.map((p) => [p.entry.name, p]));
    /** Still listed, but now from another module: started again below. */
    const replaced = new Set<string>();
    for (const plugin of [...this.running].reverse()) {
      const next = wanted.get(plugin.name);
      if (next === undefined || next.definition !== plugin.prepared.definition) {
        await this.stopPlugin(plugin);
        if (next === undefined) summary.removed.push(plugin.name);
        else replaced.add(plugin.name);
      }
    }
    const running = new Map(this.running.map((p) => [p.name, p]));
    const order: RunningPlugin[] = [];
    for (const next of prepared) {
      const name = next.entry.name;
      const current = running.get(name);
      if (current === undefined) {
        await this.setup(next);
        (replaced.has(name) ? summary.restarted : summary.added).push(name);
      } else if (sameJson(current.prepared.entry, next.entry) && sameJson(current.prepared.config, next.config)) {
        summary.unchanged.push(name);
      } else if (current.instance?.reconfigure) {
        await current.instance.reconfigure({ config: next.config, mode: modeOf(next.entry) });
        this.deps.runner.updatePlugin(name, {
          priority: next.entry.priority,
          mode: modeOf(next.entry),
          onError: next.entry.on_error,
        });
        current.prepared = next;
        summary.reconfigured.push(name);
      } else {
        await this.stopPlugin(current);
        await this.setup(next);
        summary.restarted.push(name);
      }
      order.push(this.running.find((p) => p.name === name)!);
    }
    this.running.splice(0, this.running.length, ...order);
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

  private async setup(prepared: PreparedPlugin): Promise<void> {
    const { entry, definition, manifest, config } = prepared;
    const { runner, bus, clock, identity, metrics } = this.deps;
    // What the plugin provides is recorded as its own, and withdrawn when it stops.
    const services: PluginContext<unknown>['services'] = {
      provide: (name, service) => this.deps.services.provide(entry.name, name, service),
      get: (name) => this.deps.services.get(name),
    };
    const admin: PluginContext<unknown>['admin'] = {
      route: (method, path, handler) => this.deps.admin.add(entry.name, method, path, handler),
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
      runner.register({ plugin: entry.name, hook, handler, priority: entry.priority, mode, onError: entry.on_error, ...options });
    };
    let instance: PluginInstance | void;
    try {
      instance = await definition.setup({
        name: entry.name,
        config,
        mode,
        logger,
        clock,
        identity,
        bus,
        metrics,
        services,
        admin,
        hooks: { register },
      });
    } catch (error) {
      // A plugin that did not start leaves nothing behind: no hooks, services or routes.
      this.withdraw(entry.name);
      if (error instanceof FloodgateError) throw error;
      throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${entry.name}" failed to start: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    this.running.push({ name: entry.name, prepared, instance });
    logger.info({ mode, priority: entry.priority, on_error: entry.on_error, hooks: manifest.available_hooks }, 'plugin loaded');
  }

  /** Tears plugins down in reverse order; one failing teardown does not stop the others. */
  async teardown(): Promise<void> {
    while (this.running.length > 0) await this.stopPlugin(this.running.at(-1)!);
  }

  /** Takes back everything a plugin registered with the gateway. */
  private withdraw(name: string): void {
    this.deps.runner.unregisterPlugin(name);
    this.deps.services.withdraw(name);
    this.deps.admin.withdraw(name);
  }

  private async stopPlugin(plugin: RunningPlugin): Promise<void> {
    this.running.splice(this.running.indexOf(plugin), 1);
    this.withdraw(plugin.name);
    try {
      await plugin.instance?.teardown?.();
    } catch (error) {
      this.deps.logger.error({ plugin: plugin.name, err_message: errorMessage(error) }, 'plugin teardown failed');
    }
  }
}

