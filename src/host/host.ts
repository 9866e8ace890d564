import type { PluginEntry } from '../config/schema.ts';
import { HostedPlugin, type HostedPluginDeps } from './hosted-plugin.ts';
import { preparePlugins, type PreparedPlugin } from './prepare.ts';
import { planReload, type ReloadPlan, type ReloadSummary } from './reload-plan.ts';
import { PluginRoster } from './roster.ts';

export type { ReloadSummary } from './reload-plan.ts';

export interface PluginHostDeps extends HostedPluginDeps {
  /** config.json's path: plugin paths are relative to its folder, and errors name it. */
  configPath: string;
}

/**
 * Loads the plugins config.json lists, validates each one's manifest and config before any of them
 * starts (every problem of every plugin is reported at once; see prepare.ts), sets them up in order
 * and tears them down in reverse. Loading and reloading are all or nothing: new instances stay
 * staged (see HostedPlugin) until every plugin has started or reconfigured.
 */
export class PluginHost {
  private readonly roster = new PluginRoster();

  constructor(private readonly deps: PluginHostDeps) {}

  get pluginNames(): string[] {
    return this.roster.live.map((p) => p.name);
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
    const prepared = await preparePlugins(entries, this.deps.configPath);
    const plan = planReload(this.roster.live, prepared);
    const pending = this.roster.begin(plan.leaving);
    /** What was changed so far, in order: undone in reverse if a later step fails. */
    const changed: HostedPlugin[] = [];
    /** The instance each listed plugin will run as. */
    const order: HostedPlugin[] = [];
    try {
      for (const step of plan.steps) {
        switch (step.change) {
          case 'added':
          case 'restarted': {
            const started = await this.start(step.next);
            changed.push(started);
            order.push(started);
            break;
          }
          case 'reconfigured':
            // Undone even if it throws: a reconfigure that failed may have taken part of the new config.
            changed.push(step.current);
            await step.current.reconfigure(step.next);
            order.push(step.current);
            break;
          case 'unchanged':
            order.push(step.current);
        }
      }
      // The one step of the commit that may refuse (an unknown hook): taken before anything else changes.
      this.deps.runner.replace(order.flatMap((plugin, i) => plugin.registrations(plan.steps[i]!.next.entry)));
    } catch (error) {
      await this.rollBack(changed);
      throw error;
    } finally {
      this.roster.end();
    }
    for (const plugin of this.commit(plan, order, pending.staged)) await plugin.stop();
    return plan.summary;
  }

  /** Tears plugins down in reverse order; one failing teardown does not stop the others. */
  async teardown(): Promise<void> {
    while (this.roster.live.length > 0) {
      const plugin = this.roster.live.pop()!;
      this.deps.runner.unregisterPlugin(plugin.name);
      plugin.withdraw();
      await plugin.stop();
    }
  }

  /** Sets up a new instance, staged: what it registers is served only once its reload commits. */
  private async start(prepared: PreparedPlugin): Promise<HostedPlugin> {
    const plugin = new HostedPlugin(prepared, this.deps, this.roster);
    // Counted among the plugins there will be from the start: its setup may already read services.
    this.roster.stage(plugin);
    try {
      await plugin.setUp();
    } catch (error) {
      this.roster.unstage(plugin);
      throw error;
    }
    return plugin;
  }

  /**
   * Everything set up and reconfigured, the new hook table in place: the rest cannot fail, and
   * takes effect in one step, nothing awaited. Returns the instances that went, to be torn down
   * (last listed first).
   */
  private commit({ steps, leaving }: ReloadPlan, order: HostedPlugin[], staged: readonly HostedPlugin[]): HostedPlugin[] {
    const gone = this.roster.live.filter((p) => leaving.has(p.name));
    for (const plugin of gone) plugin.withdraw();
    order.forEach((plugin, i) => (plugin.prepared = steps[i]!.next));
    for (const plugin of staged) plugin.serve();
    this.roster.live = order;
    return gone.reverse();
  }

  /** A reload failed: in reverse order, new instances are torn down, reconfigured plugins get their config and mode back. */
  private async rollBack(changed: readonly HostedPlugin[]): Promise<void> {
    for (const plugin of [...changed].reverse()) {
      if (plugin.state === 'staged') await plugin.stop();
      else await plugin.restore();
    }
  }
}
