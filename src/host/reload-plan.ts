import type { HostedPlugin } from './hosted-plugin.ts';
import type { PreparedPlugin } from './prepare.ts';

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

/** What a reload does to one listed plugin: start a new instance of it, or keep the running one. */
export type ReloadStep =
  | { change: 'added' | 'restarted'; next: PreparedPlugin }
  | { change: 'unchanged' | 'reconfigured'; next: PreparedPlugin; current: HostedPlugin };

export interface ReloadPlan {
  /** One step per listed plugin, in the new list's order. */
  steps: ReloadStep[];
  /** The running instances that go if the reload commits: plugins no longer listed, and restarted ones. */
  leaving: Set<string>;
  summary: ReloadSummary;
}

/** Compares the running instances with a new, validated plugin list; changes nothing. */
export function planReload(running: readonly HostedPlugin[], prepared: readonly PreparedPlugin[]): ReloadPlan {
  const summary: ReloadSummary = { unchanged: [], reconfigured: [], restarted: [], added: [], removed: [] };
  const byName = new Map(running.map((p) => [p.name, p]));
  const listed = new Set(prepared.map((p) => p.entry.name));
  const leaving = new Set(running.filter((p) => !listed.has(p.name)).map((p) => p.name));
  summary.removed.push(...leaving);
  const steps = prepared.map((next) => {
    const step = stepFor(byName.get(next.entry.name), next);
    if (step.change === 'restarted') leaving.add(next.entry.name);
    summary[step.change].push(next.entry.name);
    return step;
  });
  return { steps, leaving, summary };
}

function stepFor(current: HostedPlugin | undefined, next: PreparedPlugin): ReloadStep {
  if (current === undefined) return { change: 'added', next };
  // Another module (its path changed): a new instance of it.
  if (current.prepared.definition !== next.definition) return { change: 'restarted', next };
  if (sameJson(current.prepared.entry, next.entry) && sameJson(current.prepared.config, next.config)) {
    return { change: 'unchanged', next, current };
  }
  return current.canReconfigure ? { change: 'reconfigured', next, current } : { change: 'restarted', next };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
