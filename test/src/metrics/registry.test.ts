import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';

describe('MetricsRegistry', () => {
  it('renders counters with labels in the Prometheus text format', () => {
    const registry = new MetricsRegistry();
    const refused = registry.counter('fg_refused_total', 'Requests refused.', ['rule', 'hook']);
    refused.inc({ rule: 'user', hook: 'prePromptFetch' });
    refused.inc({ rule: 'user', hook: 'prePromptFetch' });
    refused.inc({ rule: 'tenant', hook: 'preToolInvoke' }, 3);
    expect(registry.render()).toBe(
      [
        '# HELP fg_refused_total Requests refused.',
        '# TYPE fg_refused_total counter',
        'fg_refused_total{rule="user",hook="prePromptFetch"} 2',
        'fg_refused_total{rule="tenant",hook="preToolInvoke"} 3',
        '',
      ].join('\n'),
    );
  });

  it('renders cumulative histogram buckets, sum and count', () => {
    const registry = new MetricsRegistry();
    const latency = registry.histogram('fg_latency_seconds', 'Decision latency.', [0.001, 0.01]);
    for (const value of [0.0005, 0.005, 0.005, 2]) latency.observe(value);
    expect(registry.render().split('\n')).toEqual([
      '# HELP fg_latency_seconds Decision latency.',
      '# TYPE fg_latency_seconds histogram',
      'fg_latency_seconds_bucket{le="0.001"} 1',
      'fg_latency_seconds_bucket{le="0.01"} 3',
      'fg_latency_seconds_bucket{le="+Inf"} 4',
      'fg_latency_seconds_sum 2.0105',
      'fg_latency_seconds_count 4',
      '',
    ]);
  });

  it('reads gauges when scraped, and escapes label values', () => {
    const registry = new MetricsRegistry();
    let size = 1;
    registry.gauge('fg_keys', 'Keys held.', () => size);
    registry.counter('fg_odd_total', 'Odd labels.', ['what']).inc({ what: 'a "quoted"\nline\\' });
    size = 42;
    const text = registry.render();
    expect(text).toContain('fg_keys 42\n');
    expect(text).toContain('fg_odd_total{what="a \\"quoted\\"\\nline\\\\"} 1');
  });

  it('refuses duplicate and invalid names, and forgets removed metrics', () => {
    const registry = new MetricsRegistry();
    const first = registry.counter('fg_a_total', 'A.');
    expect(() => registry.counter('fg_a_total', 'again')).toThrow('already registered');
    expect(() => registry.counter('fg-bad', 'bad')).toThrow('invalid metric name');
    registry.remove(first);
    expect(registry.render()).toBe('\n');
    registry.counter('fg_a_total', 'A again.');
  });
});

describe('MetricsRegistry: removing a metric', () => {
  it('removes the exact metric it is given, not a newer one of the same name', () => {
    const registry = new MetricsRegistry();
    const old = registry.counter('fg_a_total', 'Old.');
    registry.remove(old);
    const fresh = registry.counter('fg_a_total', 'New.');
    fresh.inc();
    // The old one's owner disposes it again (a second teardown): the new one stays.
    registry.remove(old);
    expect(registry.render()).toContain('fg_a_total 1\n');
    registry.remove(fresh);
    expect(registry.render()).toBe('\n');
  });

  it("lets a plugin's next instance register its names while the old one still serves them", () => {
    const registry = new MetricsRegistry();
    const old = registry.scope('limiter');
    const next = registry.scope('limiter');
    old.counter('fg_a_total', 'A.').inc({}, 5);
    const waiting = next.counter('fg_a_total', 'A.');
    waiting.inc();
    // The old instance's metric is served until it goes; then the new one's.
    expect(registry.render()).toContain('fg_a_total 5\n');
    old.clear();
    expect(registry.render()).toContain('fg_a_total 1\n');
    next.clear();
    expect(registry.render()).toBe('\n');
  });

  it('still refuses a name held by another plugin, by the gateway, or twice by one instance', () => {
    const registry = new MetricsRegistry();
    registry.counter('fg_core_total', 'Core.');
    const mine = registry.scope('mine');
    mine.counter('fg_mine_total', 'Mine.');
    expect(() => registry.scope('other').counter('fg_mine_total', 'Theirs.')).toThrow('already registered');
    expect(() => mine.counter('fg_mine_total', 'Again.')).toThrow('already registered');
    expect(() => mine.counter('fg_core_total', 'Core.')).toThrow('already registered');
    expect(() => registry.counter('fg_mine_total', 'Core.')).toThrow('already registered');
  });
});
