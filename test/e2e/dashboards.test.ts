import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT, rateLimiterEntry, sendMessage, startGateway, type RunningGateway } from './support/gateway-process.ts';

const DASHBOARD = join(REPO_ROOT, 'ops/grafana/floodgate-dashboard.json');
const ALERTS = join(REPO_ROOT, 'ops/prometheus/floodgate-alerts.yml');

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

function dashboardQueries(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { query: unknown }[] } };
  expect(dashboard.uid).toBe('floodgate');
  const panels = dashboard.panels.filter((panel) => panel.type !== 'row');
  expect(panels.length).toBeGreaterThan(8);
  for (const panel of panels) expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
  return panels.flatMap((panel) => panel.targets!.map((target) => target.expr));
}

function alertQueries(): string[] {
  const file = parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string; labels: { severity: string } }[] }[] };
  const rules = file.groups.flatMap((group) => group.rules);
  expect(rules.map((rule) => rule.alert)).toEqual(
    expect.arrayContaining(['FloodgateRedisBreakerOpen', 'FloodgateRefusalRatioSpike', 'FloodgateBackendFailures']),
  );
  for (const rule of rules) expect(['page', 'warn']).toContain(rule.labels.severity);
  return rules.map((rule) => rule.expr);
}

/** Every series a query reads, with the label values it selects on (Prometheus adds `job` and `instance` itself). */
function seriesOf(expr: string): { name: string; labels: [string, string][] }[] {
  const found: { name: string; labels: [string, string][] }[] = [];
  for (const match of expr.matchAll(/\b((?:floodgate|process|nodejs)_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
    const labels = [...(match[3] ?? '').matchAll(/(\w+)\s*=~?\s*"([^"]*)"/g)]
      .map(([, name, value]) => [name!, value!] as [string, string])
      .filter(([name]) => name !== 'job' && name !== 'instance');
    found.push({ name: match[1]!, labels });
  }
  return found;
}

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

describe('the Grafana dashboard and the alert rules', () => {
  it('query only series a running gateway serves, so a renamed metric fails here first', async () => {
    gateway = await startGateway({
      channels: { http: { host: '127.0.0.1', port: 0, admin_token: 'dashboard-admin-token' } },
      plugins: [
        rateLimiterEntry({
          by_user: { rate: '3/m', tokens: '100000/h' },
          by_tool: { echo: { rate: '1/m', shadow: true } },
          block: { after: 1, durations: ['1m'] },
        }),
      ],
    });
    // Traffic that makes every outcome the queries select on: admitted, refused, shadow-refused, settled, blocked.
    const user = { user_id: 'grafana-viewer' };
    for (const text of ['/echo a', '/echo b', 'hello', 'over the limit', 'again', 'and again']) await sendMessage(gateway.url, { ...user, text });
    // And a wrong admin token, counted as a failed authentication.
    expect((await fetch(`${gateway.url}/v1/admin/status/data`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const scrape = await (await fetch(`${gateway.url}/metrics`)).text();
    const samples = scrape.split('\n').filter((line) => line !== '' && !line.startsWith('#'));

    const queries = [...dashboardQueries(), ...alertQueries()];
    const missing: string[] = [];
    for (const expr of queries) {
      const series = seriesOf(expr);
      expect(series.length, expr).toBeGreaterThan(0);
      for (const { name, labels } of series) {
        const lines = samples.filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
        if (lines.length === 0) missing.push(name);
        for (const [label, value] of labels) {
          if (!lines.some((line) => line.includes(`${label}="${value}"`))) missing.push(`${name}{${label}="${value}"}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('the scrape carries the runtime series dashboards expect', async () => {
    gateway = await startGateway({ channels: { http: { host: '127.0.0.1', port: 0 } }, plugins: [rateLimiterEntry({ by_user: '3/m' })] });
    const scrape = await (await fetch(`${gateway.url}/metrics`)).text();
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(scrape).toMatch(new RegExp(`^${name} [0-9.e+-]+$`, 'm'));
    }
    expect(scrape).toMatch(/^# TYPE nodejs_gc_duration_seconds histogram$/m);
  });
});
