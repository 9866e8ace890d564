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
