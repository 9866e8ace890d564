import type { HostedPlugin } from './hosted-plugin.ts';

/** A reload being applied: the instances that go if it commits, and the new ones set up for it so far. */
export interface PendingReload {
  readonly leaving: ReadonlySet<string>;
  readonly staged: HostedPlugin[];
}

/**
 * The host's plugin instances: those served now and, while a reload applies, those it stages. An
 * instance asks it who else is (or will be) there, to refuse a service or route another one holds.
 */
export class PluginRoster {
  /** Served now, in list order. */
  live: HostedPlugin[] = [];
  private pending: PendingReload | undefined;

  /** A reload starts applying; `leaving` names the running instances that go if it commits. */
  begin(leaving: ReadonlySet<string>): PendingReload {
    return (this.pending = { leaving, staged: [] });
  }

  /** The reload committed or was rolled back: nothing is staged any more. */
  end(): void {
    this.pending = undefined;
  }

  /** Counts a new instance among those there will be, from before its setup (it may read services then). */
  stage(plugin: HostedPlugin): void {
    this.pending?.staged.push(plugin);
  }

  /** A staged instance failed to start: it will not be there. */
  unstage(plugin: HostedPlugin): void {
    const staged = this.pending?.staged;
    staged?.splice(staged.indexOf(plugin), 1);
  }

  /** The instances there will be once the reload under way (if any) commits, staged ones included. */
  next(): HostedPlugin[] {
    const pending = this.pending;
    if (pending === undefined) return this.live;
    return [...this.live.filter((p) => !pending.leaving.has(p.name)), ...pending.staged];
  }

  /**
   * Another plugin of those there will be that holds what `holds` looks for. A plugin's own other
   * instance does not count: the new one takes over from the old at commit.
   */
  holderOf(plugin: HostedPlugin, holds: (p: HostedPlugin) => boolean): HostedPlugin | undefined {
    return this.next().find((p) => p.name !== plugin.name && holds(p));
  }
}
