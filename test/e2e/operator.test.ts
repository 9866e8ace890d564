import { afterEach, describe, expect, it } from 'vitest';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import { gatewayConfig, rateLimiterEntry, sendMessage, startGateway, type RunningGateway } from './support/gateway-process.ts';

const TOKEN = 'operator-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

let gateway: RunningGateway | undefined;
let redis: RedisProcess | undefined;
afterEach(async () => {
  await gateway?.stop();
  await redis?.stop();
  gateway = redis = undefined;
});

async function operatorFlow(limiter: Record<string, unknown>) {
  const config = gatewayConfig([rateLimiterEntry({ by_user: '3/m', by_tool: { search: '1/m' }, ...limiter })]);
  (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
  gateway = await startGateway(config);
  const { url } = gateway;
  const user = 'Operator.Visible@Example.com';
  for (let i = 0; i < 3; i++) expect((await sendMessage(url, { user_id: user, text: 'hi' })).status).toBe(200);
  expect((await sendMessage(url, { user_id: user, text: 'hi' })).status).toBe(429);

  const view = await fetch(`${url}/v1/admin/limits?user_id=${encodeURIComponent(user)}&channel=http`, { headers: auth });
  expect(view.status).toBe(200);
  const body = (await view.json()) as { rules: { rule: string; used: number; remaining: number; reset_after: number }[] };
  expect(body.rules).toEqual([
    { rule: 'user', limit: '3/m', unit: 'requests', used: 3, remaining: 0, reset_after: expect.any(Number) },
    { rule: 'tool:search', limit: '1/m', unit: 'requests', used: 0, remaining: 1, reset_after: 0 },
  ]);
  // Looking charged nothing: a second look is the same.
  const again = (await (await fetch(`${url}/v1/admin/limits?user_id=${encodeURIComponent(user)}`, { headers: auth })).json()) as typeof body;
  expect(again.rules[0]!.used).toBe(3);
  expect(JSON.stringify(body).toLowerCase()).not.toContain('operator.visible');

  expect((await fetch(`${url}/v1/admin/limits?user_id=x`, { headers: { authorization: 'Bearer nope-nope-nope-nope' } })).status).toBe(401);

  const reset = await fetch(`${url}/v1/admin/limits/reset`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: user }),
  });
  expect(reset.status).toBe(200);
  expect((await sendMessage(url, { user_id: user, text: 'hi' })).status).toBe(200);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metrics).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="admitted",rule="user"} 4');
  expect(metrics).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="refused",rule="user"} 1');
  expect(metrics).toMatch(/floodgate_ratelimit_decision_seconds_count 5\n/);
  expect(metrics.toLowerCase()).not.toContain('operator.visible');
  await gateway.stop();
  expect(gateway.stdout.join('\n').toLowerCase()).not.toContain('operator.visible');
  return metrics;
}

describe('operating the rate limiter', () => {
  it('shows, resets and counts a user on the memory backend', async () => {
    const metrics = await operatorFlow({});
    expect(metrics).toContain('floodgate_ratelimit_keys ');
  });

  it.skipIf(!redisTestsEnabled())('shows, resets and counts a user on the Redis backend', async () => {
    redis = await startRedis();
    const metrics = await operatorFlow({ backend: 'redis', redis_url: redis.url, redis_timeout_ms: 1000 });
    expect(metrics).toContain('floodgate_ratelimit_breaker_state 0');
  });
});
