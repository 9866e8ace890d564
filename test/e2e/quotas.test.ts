import { afterEach, describe, expect, it } from 'vitest';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import { gatewayConfig, rateLimiterEntry, sendMessage, startGateway, startGateways, type RunningGateway } from './support/gateway-process.ts';

const TOKEN = 'operator-token-0123456789';
const USER = 'Quota.Person@Example.com';

let gateway: RunningGateway | undefined;
let redis: RedisProcess | undefined;
afterEach(async () => {
  await gateway?.stop();
  await redis?.stop();
  gateway = redis = undefined;
});

const BACKENDS = ['memory', ...(redisTestsEnabled() ? ['redis'] : [])];

async function start(backend: string, limiter: Record<string, unknown>): Promise<RunningGateway> {
  let backendConfig = {};
  if (backend === 'redis') {
    redis = await startRedis();
    backendConfig = { backend: 'redis', redis_url: redis.url, redis_timeout_ms: 1000 };
  }
  const config = gatewayConfig([rateLimiterEntry({ ...limiter, ...backendConfig })]);
  (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
  gateway = await startGateway(config);
  return gateway;
}

interface View {
  rules: { rule: string; used: number; remaining: number; shadow?: boolean }[];
  concurrency: { rule: string; in_flight: number }[];
}

async function limits(url: string, tenant?: string): Promise<View> {
  const query = new URLSearchParams({ user_id: USER, ...(tenant ? { tenant_id: tenant } : {}) });
  const response = await fetch(`${url}/v1/admin/limits?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await response.json()) as View;
}

function rule(view: View, name: string) {
  return view.rules.find((r) => r.rule === name)!;
}

describe.each(BACKENDS)('quotas through the real gateway (%s)', (backend) => {
  it('token budgets: the estimate is reserved, the actual count committed, a too-large request refused at once', async () => {
    const { url } = await start(backend, { by_user: { rate: '100/m', tokens: '250/h' } });
    // "/echo " and 194 characters: 50 tokens of prompt, estimated 100 (an answer as long); the echo is 49.
    const text = `/echo ${'x'.repeat(194)}`;
    expect((await sendMessage(url, { user_id: USER, text })).status).toBe(200);
    expect(rule(await limits(url), 'user-tokens')).toMatchObject({ used: 99 });
    expect((await sendMessage(url, { user_id: USER, text })).status).toBe(200);
    expect(rule(await limits(url), 'user-tokens')).toMatchObject({ used: 198 });
    // 198 used + 100 reserved > 250.
    const refused = await sendMessage(url, { user_id: USER, text });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: 'rate_limited' });
    expect(rule(await limits(url), 'user-tokens')).toMatchObject({ used: 198 });
    expect(rule(await limits(url), 'user')).toMatchObject({ used: 2 });

    const huge = await sendMessage(url, { user_id: USER, text: 'y'.repeat(1100) });
    expect(huge.status).toBe(413);
    expect(huge.body).toEqual({
      error: 'request_too_large',
      reply: 'Sorry, that request is too large: it needs about 550 tokens, and the limit is 250 tokens per hour. Please make it shorter.',
    });
    expect(huge.raw.toLowerCase()).not.toContain('quota.person');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('floodgate_ratelimit_settlements_total{outcome="committed"} 2');
  });

  it('concurrency: a second call waits for the first, is refused past queue_timeout_ms, and a cancelled call costs nothing', async () => {
    const { url } = await start(backend, { by_user: { rate: '100/m', max_concurrent: 1, queue_timeout_ms: 2000 } });
    // Queued: the second call runs once the first ends.
    const first = sendMessage(url, { user_id: USER, text: '/wait 300' });
    await expect.poll(async () => (await limits(url)).concurrency[0]!.in_flight).toBe(1);
    const second = await sendMessage(url, { user_id: USER, text: 'hi' });
    expect(second.status).toBe(200);
    expect((await first).body).toMatchObject({ reply: 'Waited 300 ms.' });

    // A client that hangs up frees its slot and is charged nothing.
    const client = new AbortController();
    const abandoned = fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: USER, text: '/wait 10000' }),
      signal: client.signal,
    }).catch(() => 'aborted');
    await expect.poll(async () => (await limits(url)).concurrency[0]!.in_flight).toBe(1);
    expect(rule(await limits(url), 'user')).toMatchObject({ used: 3 });
    client.abort();
    expect(await abandoned).toBe('aborted');
    await expect.poll(async () => (await limits(url)).concurrency[0]!.in_flight).toBe(0);
    expect(rule(await limits(url), 'user')).toMatchObject({ used: 2 });
    expect((await sendMessage(url, { user_id: USER, text: 'hi' })).status).toBe(200);
  });

  it('concurrency: refused after queue_timeout_ms with a friendly 429', async () => {
    const { url } = await start(backend, { by_user: { max_concurrent: 1, queue_timeout_ms: 200 } });
    const held = sendMessage(url, { user_id: USER, text: '/wait 1000' });
    await expect.poll(async () => (await limits(url)).concurrency[0]!.in_flight).toBe(1);
    const refused = await sendMessage(url, { user_id: USER, text: 'hi' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body).toEqual({
      error: 'concurrency_limited',
      reply: 'Sorry, you have 1 request in progress already. Please wait for one to finish and try again.',
      retry_after: 1,
    });
    expect((await held).status).toBe(200);
  });

  it('shadow settings are counted and reported, never enforced', async () => {
    const { url } = await start(backend, { by_user: '100/m', by_tenant: { rate: '2/m', shadow: true } });
    for (let i = 0; i < 4; i++) expect((await sendMessage(url, { user_id: USER, tenant_id: 'Shadow-Co', text: 'hi' })).status).toBe(200);
    expect(rule(await limits(url, 'Shadow-Co'), 'tenant')).toMatchObject({ used: 2, remaining: 0, shadow: true });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="shadow_refused",rule="tenant"} 2');
    await gateway!.stop();
    const lines = gateway!.logs().filter((l) => l.msg === 'shadow rule would refuse; request allowed');
    expect(lines).toHaveLength(1);
    const out = gateway!.stdout.join('\n').toLowerCase();
    expect(out).not.toContain('shadow-co');
    expect(out).not.toContain('quota.person');
  });
});

describe.skipIf(!redisTestsEnabled())('concurrency slots shared through Redis', () => {
  let gateways: RunningGateway[] = [];
  afterEach(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
  });

  it('a gateway that crashes mid-call frees its slot after the lease; a live call keeps its slot past it', async () => {
    redis = await startRedis();
    const config = gatewayConfig([
      rateLimiterEntry({ by_user: { max_concurrent: 1 }, backend: 'redis', redis_url: redis.url, redis_timeout_ms: 1000, concurrency_lease_ms: 1000 }),
    ]);
    (config.channels as { http: Record<string, unknown> }).http.admin_token = TOKEN;
    const [doomed, survivor] = await startGateways(2, config);
    gateways = [doomed!, survivor!];
    const inFlight = async () => (await limits(survivor!.url)).concurrency[0]!.in_flight;

    void sendMessage(doomed!.url, { user_id: USER, text: '/wait 10000' }).catch(() => undefined);
    await expect.poll(inFlight).toBe(1);
    // The slot is shared: the other gateway's call finds it taken.
    expect((await sendMessage(survivor!.url, { user_id: USER, text: 'hi' })).body).toMatchObject({ error: 'concurrency_limited' });

    doomed!.process.kill('SIGKILL');
    await doomed!.exited;
    // Nobody renews the dead gateway's lease: the slot frees itself.
    await expect.poll(inFlight, { timeout: 5000, interval: 100 }).toBe(0);

    // A live call renews its lease: held well past one lease period, it keeps its slot.
    const long = sendMessage(survivor!.url, { user_id: USER, text: '/wait 2500' });
    await expect.poll(inFlight).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await inFlight()).toBe(1);
    expect((await sendMessage(survivor!.url, { user_id: USER, text: 'hi' })).body).toMatchObject({ error: 'concurrency_limited' });
    expect((await long).status).toBe(200);
    expect((await sendMessage(survivor!.url, { user_id: USER, text: 'hi' })).status).toBe(200);
  });
});
