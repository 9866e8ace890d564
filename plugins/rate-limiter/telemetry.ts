import { type MessageBus, type Counter, type Histogram, type MetricsRegistry, type RegisteredMetric } from '../../src/plugin-sdk.ts';
import type { RateLimitDecisionEvent } from './events.ts';
import { retryAfterSeconds, type Outcome } from './engine/outcome.ts';
import { ruleBase } from './policy.ts';
import { CONCURRENCY_RETRY_S } from './present/presenter.ts';
import type { BreakerState } from './breaker.ts';

const PREFIX = 'floodgate_ratelimit';
/** From 10 µs (a memory decision) to 0.5 s (a struggling network). */
const LATENCY_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5];
const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface TelemetrySources {
  /** Keys held in this process. */
  keys: () => number;
  /** The Redis breaker's state; undefined on the memory backend (the gauge then reads "closed"). */
  breaker: () => BreakerState | undefined;
  /** Blocks in force held in this process's memory (none when absent). */
  blocks?: () => number;
}

/** Decisions by outcome and rule (summed over hooks), decision time and backend failures, since start. */
export interface TelemetryTotals {
  decisions: { rule: string; outcome: string; count: number }[];
  latency: { sum: number; count: number };
  backendFailures: number;
  /** Escalating blocks this gateway's requests started. */
  blocksStarted: number;
}

/**
 * The limiter's metrics (served at /metrics) and bus events. Labels are hooks, rule names and
 * outcomes: a fixed, small set, and never an id.
 */
export class LimiterTelemetry {
  private readonly decisions: Counter;
  private readonly latency: Histogram;
  private readonly failures: Counter;
  private readonly faults: Counter;
  private readonly settlements: Counter;
  private readonly blocksStarted: Counter;
  private readonly cachedRefusals: Counter;
  private readonly registered: RegisteredMetric[] = [];

  constructor(
    private readonly metrics: MetricsRegistry,
    private readonly bus: MessageBus,
    sources: TelemetrySources,
  ) {
    this.decisions = this.track(
      metrics.counter(`${PREFIX}_decisions_total`, 'Rate-limit decisions by hook, outcome and deciding rule.', [
        'hook',
        'outcome',
        'rule',
      ]),
    );
    this.latency = this.track(
      metrics.histogram(`${PREFIX}_decision_seconds`, 'Time the store took to decide one request.', LATENCY_BUCKETS),
    );
    this.failures = this.track(
      metrics.counter(`${PREFIX}_backend_failures_total`, 'Redis calls that failed or timed out.'),
    );
    this.settlements = this.track(
      metrics.counter(`${PREFIX}_settlements_total`, 'Prompt fetches whose end adjusted their charge, by outcome.', ['outcome']),
    );
    this.cachedRefusals = this.track(
      metrics.counter(`${PREFIX}_cached_refusals_total`, 'Refusals answered from this process\'s refusal cache, without a Redis call.'),
    );
    this.faults = this.track(
      metrics.counter(`${PREFIX}_faults_total`, 'Errors inside the limiter after it answered (shadow decisions, settlements).'),
    );
    this.blocksStarted = this.track(
      metrics.counter(`${PREFIX}_blocks_started_total`, 'Escalating blocks started, by blocked subject and level.', ['rule', 'level']),
    );
    this.track(metrics.gauge(`${PREFIX}_keys`, 'Rate-limit keys held in this process.', sources.keys));
    this.track(metrics.gauge(`${PREFIX}_blocks`, "Blocks in force held in this process's memory (the memory backend, or Redis's fallback).", sources.blocks ?? (() => 0)));
    // Registered whatever the backend: a reload may move the state to Redis (or away) while this lives on.
    this.track(
      metrics.gauge(`${PREFIX}_breaker_state`, 'Redis circuit breaker: 0 closed, 1 half-open, 2 open.', () => BREAKER_VALUE[sources.breaker() ?? 'closed']),
    );
  }

  /** What has been counted so far, for the status page (which turns two of these into rates). */
  totals(): TelemetryTotals {
    const decisions = new Map<string, { rule: string; outcome: string; count: number }>();
    for (const { labels, value } of this.decisions.values()) {
      const key = `${labels.outcome}\0${labels.rule}`;
      const row = decisions.get(key);
      if (row === undefined) decisions.set(key, { rule: labels.rule!, outcome: labels.outcome!, count: value });
      else row.count += value;
    }
    const failures = this.failures.values()[0]?.value ?? 0;
    const blocksStarted = this.blocksStarted.values().reduce((sum, { value }) => sum + value, 0);
    return { decisions: [...decisions.values()], latency: this.latency.totals(), backendFailures: failures, blocksStarted };
  }

  /** Counts one outcome (see decided()). */
  observe(outcome: Outcome): void {
    const { step, subject, latencyMs } = outcome;
    switch (outcome.kind) {
      case 'admitted': {
        const rule = outcome.decision === undefined ? undefined : ruleBase(outcome.checks[outcome.binding]!.rule);
        return this.decided(step, subject.channel, 'admitted', rule, undefined, latencyMs);
      }
      case 'limited': {
        const rule = ruleBase(outcome.checks[outcome.binding]!.rule);
        return this.decided(step, subject.channel, 'refused', rule, retryAfterSeconds(outcome.decision.retryAfterMs), latencyMs);
      }
      case 'concurrency_limited':
        return this.decided(step, subject.channel, 'refused', `${outcome.limit.label}-concurrency`, CONCURRENCY_RETRY_S, latencyMs);
      case 'too_large':
        return this.decided(step, subject.channel, 'refused', ruleBase(outcome.rule), undefined, latencyMs);
      case 'unavailable':
        return this.decided(step, subject.channel, 'unavailable', undefined, retryAfterSeconds(outcome.retryAfterMs), latencyMs);
      case 'blocked':
        if (outcome.started) this.blockStarted(outcome.block.subject, outcome.level, outcome.durationMs);
        return this.decided(step, subject.channel, 'blocked', outcome.block.subject, retryAfterSeconds(outcome.retryAfterMs), latencyMs);
      case 'denied':
        return this.decided(step, subject.channel, 'refused', `denied-${outcome.list}`, undefined, latencyMs);
    }
  }

  /** Once per block (the refusal that started it): counted by subject and level, and told on the bus. */
  private blockStarted(rule: string, level: number, durationMs: number): void {
    this.blocksStarted.child({ rule, level: String(level) }).inc();
    if (this.bus.listenerCount('ratelimit:block_started') > 0) this.bus.emit('ratelimit:block_started', { rule, level, duration_s: Math.ceil(durationMs / 1000) });
  }

  /**
   * Counts one decision. On every message's path: the counter series are looked up in nested maps of
   * the (few, constant) label values, and the bus event is built only when someone listens.
   */
  decided(
    hook: string,
    channel: string,
    outcome: RateLimitDecisionEvent['outcome'],
    rule: string | undefined,
    retryAfter: number | undefined,
    latencyMs: number,
  ): void {
    this.series(hook, outcome, rule ?? 'none').inc();
    this.latency.observe(latencyMs / 1000);
    if (this.bus.listenerCount('ratelimit:decision') === 0) return;
    const event: RateLimitDecisionEvent = { hook, channel, outcome, latency_ms: latencyMs };
    if (rule !== undefined) event.rule = rule;
    if (retryAfter !== undefined) event.retry_after = retryAfter;
    this.bus.emit('ratelimit:decision', event);
  }

  private readonly bySeries = new Map<string, Map<string, Map<string, { inc(by?: number): void }>>>();
  private readonly bySettlement = new Map<string, { inc(by?: number): void }>();

  /** The series counted last: a run of decisions with the same labels (most traffic) skips the maps. */
  private last: { hook: string; outcome: string; rule: string; series: { inc(by?: number): void } } | undefined;

  private series(hook: string, outcome: string, rule: string): { inc(by?: number): void } {
    const last = this.last;
    if (last !== undefined && last.hook === hook && last.outcome === outcome && last.rule === rule) return last.series;
    let byOutcome = this.bySeries.get(hook);
    if (byOutcome === undefined) this.bySeries.set(hook, (byOutcome = new Map()));
    let byRule = byOutcome.get(outcome);
    if (byRule === undefined) byOutcome.set(outcome, (byRule = new Map()));
    let series = byRule.get(rule);
    if (series === undefined) byRule.set(rule, (series = this.decisions.child({ hook, outcome, rule })));
    this.last = { hook, outcome, rule, series };
    return series;
  }

  /** A prompt fetch's end adjusted its charge: committed its actual tokens, or refunded it all. */
  settled(outcome: 'committed' | 'refunded'): void {
    // Once per prompt fetch: the series is found, not built (made on first use, so /metrics lists
    // only outcomes that happened).
    let series = this.bySettlement.get(outcome);
    if (series === undefined) this.bySettlement.set(outcome, (series = this.settlements.child({ outcome })));
    series.inc();
    if (this.bus.listenerCount('ratelimit:settled') > 0) this.bus.emit('ratelimit:settled', { outcome });
  }

  backendFailed(message: string): void {
    this.failures.inc();
    this.bus.emit('ratelimit:backend_error', { message });
  }

  breakerChanged(state: BreakerState, previous: BreakerState): void {
    this.bus.emit('ratelimit:breaker', { state, previous });
  }

  /** A refusal answered from the refusal cache (on every such refusal: a counter increment only). */
  cachedRefusal(): void {
    this.cachedRefusals.inc();
  }

  fault(): void {
    this.faults.inc();
  }

  /** Removes the metrics (the plugin is being torn down; a new instance registers its own). */
  dispose(): void {
    for (const metric of this.registered) this.metrics.remove(metric);
  }

  private track<M extends RegisteredMetric>(metric: M): M {
    this.registered.push(metric);
    return metric;
  }
}
