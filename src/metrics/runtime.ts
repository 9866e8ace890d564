import { Registry, collectDefaultMetrics } from 'prom-client';

let shared: Registry | undefined;

/**
 * The process and Node.js runtime series dashboards expect (CPU, memory, event-loop lag, GC, handles),
 * as prom-client's default collectors name them (`process_cpu_seconds_total`,
 * `nodejs_eventloop_lag_seconds`, `nodejs_gc_duration_seconds`, ...). They describe the process, so
 * there is one set per process, however many gateways it runs; the gateway's own series stay in
 * MetricsRegistry, whose hot-path counters cost less.
 */
export function runtimeMetrics(): Registry {
  if (shared === undefined) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}
