import type { BreakerState } from '../breaker.ts';
import type { TelemetryTotals } from '../telemetry.ts';
import type { TopSubjects } from './top-subjects.ts';

/** What the status page reads of the running limiter. */
export interface StatusSources {
  totals(): TelemetryTotals | undefined;
  backend(): 'memory' | 'redis';
  breaker(): BreakerState | undefined;
  keys(): number;
  /** Blocks in force held in this process's memory. */
  blocks(): number;
  top: TopSubjects;
}

/** How many of the most refused subjects the page lists. */
const TOP = 10;

/**
 * One reading of the limiter for the status page: running totals (the page turns two readings into
 * rates per second), the backend's health and the most refused subjects by salted hash. No id.
 */
export function statusSnapshot(sources: StatusSources, now: number) {
  const totals = sources.totals() ?? { decisions: [], latency: { sum: 0, count: 0 }, backendFailures: 0, blocksStarted: 0 };
  return {
    at: now,
    backend: sources.backend(),
    breaker: sources.breaker() ?? 'closed',
    keys: sources.keys(),
    blocks: sources.blocks(),
    blocks_started: totals.blocksStarted,
    decisions: totals.decisions,
    latency: { sum_seconds: totals.latency.sum, count: totals.latency.count },
    backend_failures: totals.backendFailures,
    top_subjects: sources.top.top(TOP, now),
  };
}

export type StatusSnapshot = ReturnType<typeof statusSnapshot>;
