import { describe, expect, it } from 'vitest';
import { LimiterTelemetry } from '../../../plugins/rate-limiter/telemetry.ts';
import { MessageBus } from '../../../src/bus/bus.ts';
import type { RateLimitDecisionEvent } from '../../../plugins/rate-limiter/events.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';

describe('LimiterTelemetry', () => {
  it('counts decisions by hook, outcome and rule, and emits a bus event only to listeners', () => {
    const metrics = new MetricsRegistry();
    const bus = new MessageBus();
    const telemetry = new LimiterTelemetry(metrics, bus, { keys: () => 7, breaker: () => undefined });
    telemetry.decided('prePromptFetch', 'http', 'admitted', 'user', undefined, 0.02);
    const events: RateLimitDecisionEvent[] = [];
    bus.on('ratelimit:decision', (e) => events.push(e));
    telemetry.decided('prePromptFetch', 'http', 'refused', 'user', 12, 0.03);
    telemetry.decided('preToolInvoke', 'telegram', 'unavailable', undefined, 1, 0.01);
    expect(events).toEqual([
      { hook: 'prePromptFetch', channel: 'http', outcome: 'refused', rule: 'user', retry_after: 12, latency_ms: 0.03 },
      { hook: 'preToolInvoke', channel: 'telegram', outcome: 'unavailable', retry_after: 1, latency_ms: 0.01 },
    ]);
    const text = metrics.render();
    expect(text).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="admitted",rule="user"} 1');
    expect(text).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="refused",rule="user"} 1');
    expect(text).toContain('floodgate_ratelimit_decisions_total{hook="preToolInvoke",outcome="unavailable",rule="none"} 1');
    expect(text).toContain('floodgate_ratelimit_decision_seconds_count 3');
    expect(text).toContain('floodgate_ratelimit_keys 7');
    telemetry.dispose();
    expect(metrics.render()).toBe('\n');
  });
});
