import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  gatewayConfig,
  rateLimiterEntry,
  sendMessage,
  startGatewayFrom,
  waitForLog,
  writeConfig,
  type RunningGateway,
} from './support/gateway-process.ts';

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

const statusOf = async (url: string) => (await sendMessage(url, { user_id: 'u', text: 'hi' })).status;

describe('config reload (SIGHUP)', () => {
  it('applies a new limit and header style without forgetting what each user has already used', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '3/m' })]));
    gateway = await startGatewayFrom(path);
    const { url } = gateway;
    for (let i = 0; i < 3; i++) expect(await statusOf(url)).toBe(200);
    expect(await statusOf(url)).toBe(429);

    writeFileSync(path, JSON.stringify(gatewayConfig([rateLimiterEntry({ by_user: '5/m', headers: 'legacy' })])));
    gateway!.process.kill('SIGHUP');
    const reloaded = await waitForLog(gateway!, 'config reloaded');
    expect(reloaded.reconfigured).toEqual(['rate_limiter']);
    // 3 of the new 5 were already used before the reload: exactly 2 more.
    const next = await sendMessage(url, { user_id: 'u', text: 'hi' });
    expect(next.status).toBe(200);
    expect(next.headers.get('x-ratelimit-limit')).toBe('5');
    expect(next.headers.get('x-ratelimit-remaining')).toBe('1');
    expect(next.headers.get('ratelimit-policy')).toBeNull();
    expect(await statusOf(url)).toBe(200);
    expect(await statusOf(url)).toBe(429);
  });

  it('refuses an invalid config, naming the field, and keeps running on the old one', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '2/m' })]));
    gateway = await startGatewayFrom(path);
    const { url } = gateway;
    writeFileSync(path, JSON.stringify(gatewayConfig([rateLimiterEntry({ by_user: 'lots/m' })])));
    gateway!.process.kill('SIGHUP');
    const rejected = await waitForLog(gateway!, 'config reload rejected');
    expect(rejected.err_message).toContain('plugins[0] (rate_limiter).config.by_user: "lots/m" is not a rate');
    expect(await statusOf(url)).toBe(200);
    expect(await statusOf(url)).toBe(200);
    expect(await statusOf(url)).toBe(429);
    expect(gateway!.process.exitCode).toBeNull();
  });
});

describe('config reload (SIGHUP): what carries over', () => {
  const reload = async (path: string, config: Record<string, unknown>) => {
    writeFileSync(path, JSON.stringify(gatewayConfig([rateLimiterEntry(config)])));
    gateway!.process.kill('SIGHUP');
    return waitForLog(gateway!, 'rate limiter reconfigured');
  };

  it('a rate that becomes a list of windows, or gains by_tenant, keeps what each user used', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '3/m' })]));
    gateway = await startGatewayFrom(path);
    const { url } = gateway;
    const send = async () => (await sendMessage(url, { user_id: 'u', tenant_id: 'acme', text: 'hi' })).status;
    for (let i = 0; i < 2; i++) expect(await send()).toBe(200);

    const listed = await reload(path, { by_user: ['3/m', '100/h'] });
    expect(listed).toMatchObject({ msg: 'rate limiter reconfigured; counts kept, new windows count from now', new_windows: ['user 1h', 'tool 1h'] });
    expect(await send()).toBe(200);
    expect(await send()).toBe(429);

    gateway!.stdout.length = 0;
    const tenanted = await reload(path, { by_user: ['3/m', '100/h'], by_tenant: '50/m' });
    expect(tenanted.new_windows).toEqual(['tenant 1m']);
    // Still the same user's minute: three used, none left.
    expect(await send()).toBe(429);
  });

  it('a token budget added by a reload settles each call with its actual count', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '100/m' })]));
    gateway = await startGatewayFrom(path);
    const { url } = gateway;
    expect(await statusOf(url)).toBe(200);
    await reload(path, { by_user: { rate: '100/m', tokens: '250/h' } });
    expect(await statusOf(url)).toBe(200);
    expect(await statusOf(url)).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    // Each call after the reload had its estimate replaced by what it used, once it ended.
    expect(metrics).toContain('floodgate_ratelimit_settlements_total{outcome="committed"} 2');
  });

  it('/metrics keeps the limiter series after a reload that changes its algorithm', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '3/m' })]));
    gateway = await startGatewayFrom(path);
    const { url } = gateway;
    expect(await statusOf(url)).toBe(200);
    const moved = await reload(path, { by_user: '3/m', algorithm: 'fixed_window' });
    expect(moved.msg).toBe('rate limiter reconfigured with another algorithm or backend; counts start afresh');
    expect(await statusOf(url)).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('floodgate_ratelimit_decisions_total{hook="prePromptFetch",outcome="admitted",rule="user"} 2');
    expect(metrics).toContain('floodgate_ratelimit_keys 1');
  });
});
