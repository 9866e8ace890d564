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
import { readManifest, type PluginManifest } from './manifest.ts';
import { isPluginDefinition, type PluginDefinition, type PluginInstance } from './plugin.ts';

interface PreparedPlugin {
  entry: PluginEntry;
  definition: PluginDefinition;
  manifest: PluginManifest;
  config: unknown;
}

interface RunningPlugin {
  name: string;
  instance: PluginInstance | void;
}

export interface PluginHostDeps {
  runner: HookRunner;
  bus: MessageBus;
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

  private async setup({ entry, definition, manifest, config }: PreparedPlugin): Promise<void> {
    const { runner, bus, clock, identity } = this.deps;
    const logger = this.deps.logger.child({ plugin: entry.name });
    const mode = entry.mode === 'permissive' ? 'permissive' : 'enforce';
    const declared = new Set<string>(manifest.available_hooks);
    const register = <N extends HookName>(hook: N, handler: HookHandler<N>): void => {
      if (!declared.has(hook)) {
        throw new FloodgateError(
          ErrorCode.HookUndeclared,
          `plugin "${entry.name}" registered hook "${hook}", which its manifest does not declare (available_hooks: ${manifest.available_hooks.join(', ')})`,
        );
      }
      runner.register({ plugin: entry.name, hook, handler, priority: entry.priority, mode, onError: entry.on_error });
    };
    let instance: PluginInstance | void;
    try {
      instance = await definition.setup({ name: entry.name, config, mode, logger, clock, identity, bus, hooks: { register } });
    } catch (error) {
      runner.unregisterPlugin(entry.name);
      if (error instanceof FloodgateError) throw error;
      throw new FloodgateError(ErrorCode.PluginLoad, `plugin "${entry.name}" failed to start: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    this.running.push({ name: entry.name, instance });
    logger.info({ mode, priority: entry.priority, on_error: entry.on_error, hooks: manifest.available_hooks }, 'plugin loaded');
  }

  /** Tears plugins down in reverse order; one failing teardown does not stop the others. */
  async teardown(): Promise<void> {
    while (this.running.length > 0) {
      const plugin = this.running.pop()!;
      this.deps.runner.unregisterPlugin(plugin.name);
      try {
        await plugin.instance?.teardown?.();
      } catch (error) {
        this.deps.logger.error({ plugin: plugin.name, err_message: errorMessage(error) }, 'plugin teardown failed');
      }
    }
  }
}
