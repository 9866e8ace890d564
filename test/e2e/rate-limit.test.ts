import { afterEach, describe, expect, it } from 'vitest';
import { gatewayConfig, rateLimiterEntry, sendMessage, startGateway, type RunningGateway } from './support/gateway-process.ts';

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

describe('rate limiting through the real gateway process', () => {
  it('answers a flood with 429, the friendly reply and rate-limit headers, and leaves other users alone', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '5/m' })]));
    for (let i = 0; i < 5; i++) {
      const ok = await sendMessage(gateway.url, { user_id: 'flooder', text: `hello ${i}` });
      expect(ok.status).toBe(200);
      expect(ok.body.reply).toEqual(expect.any(String));
      expect(ok.headers.get('x-ratelimit-limit')).toBe('5');
      expect(ok.headers.get('x-ratelimit-remaining')).toBe(String(4 - i));
      expect(ok.headers.get('ratelimit-policy')).toBe('"user";q=5;w=60');
    }
    const refused = await sendMessage(gateway.url, { user_id: 'flooder', text: 'one more' });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toBe('rate_limited');
    expect(refused.body.reply).toMatch(/too fast.*wait \d+ seconds?/i);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(55);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body.retry_after).toBe(retryAfter);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('5');
    expect(refused.headers.get('ratelimit')).toMatch(/^"user";r=0;t=\d+$/);

    // Refused again on every further request (HTTP answers each time), never admitted.
    for (let i = 0; i < 3; i++) expect((await sendMessage(gateway.url, { user_id: 'flooder', text: 'x' })).status).toBe(429);

    const other = await sendMessage(gateway.url, { user_id: 'bystander', text: 'hi' });
    expect(other.status).toBe(200);
    expect(other.headers.get('x-ratelimit-remaining')).toBe('4');
  });

  it('sends only the header fields the operator chose (headers: "ietf"), and Retry-After on a refusal', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '1/m', headers: 'ietf' })]));
    const ok = await sendMessage(gateway.url, { user_id: 'reader', text: 'hi' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('ratelimit-policy')).toBe('"user";q=1;w=60');
    expect(ok.headers.get('ratelimit')).toMatch(/^"user";r=0;t=\d+$/);
    expect(ok.headers.get('x-ratelimit-limit')).toBeNull();
    const refused = await sendMessage(gateway.url, { user_id: 'reader', text: 'again' });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(55);
    expect(refused.headers.get('x-ratelimit-remaining')).toBeNull();
  });

  it('admits the user again once the window has slid past, at the time Retry-After announced', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '3/2s' })]));
    for (let i = 0; i < 3; i++) expect((await sendMessage(gateway.url, { user_id: 'u', text: 'hi' })).status).toBe(200);
    const refused = await sendMessage(gateway.url, { user_id: 'u', text: 'hi' });
    expect(refused.status).toBe(429);
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(2);
    await new Promise((r) => setTimeout(r, wait * 1000));
    const again = await sendMessage(gateway.url, { user_id: 'u', text: 'hi' });
    expect(again.status).toBe(200);
  });

  it('treats spelling variants of one id as one user, and blank ids as one anonymous user', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '3/m' })]));
    const spellings = ['Alice', ' alice', 'ALICE '];
    for (const user_id of spellings) expect((await sendMessage(gateway.url, { user_id, text: 'hi' })).status).toBe(200);
    expect((await sendMessage(gateway.url, { user_id: 'ａｌｉｃｅ', text: 'hi' })).status).toBe(429);

    for (const user_id of ['', ' ', '\t']) expect((await sendMessage(gateway.url, { user_id, text: 'hi' })).status).toBe(200);
    expect((await sendMessage(gateway.url, { user_id: '   ', text: 'hi' })).status).toBe(429);
  });

  it('limits a tool by its own rate, matched whatever the case of the command, without touching other tools', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '50/m', by_tool: { search: '2/m' } })]));
    expect((await sendMessage(gateway.url, { user_id: 'u', text: '/search window' })).status).toBe(200);
    expect((await sendMessage(gateway.url, { user_id: 'u', text: '/SEARCH token' })).status).toBe(200);
    const refused = await sendMessage(gateway.url, { user_id: 'u', text: '/Search bucket' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit-policy')).toBe('"tool";q=2;w=60');
    const echo = await sendMessage(gateway.url, { user_id: 'u', text: '/echo still here' });
    expect(echo.status).toBe(200);
    expect(echo.body.reply).toBe('still here');
  });

  it('holds a tenant limit across all its users, and a refused request charges no other rule', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '3/m', by_tenant: '4/m' })]));
    for (const user_id of ['a', 'b', 'c', 'd']) {
      expect((await sendMessage(gateway.url, { user_id, tenant_id: 'acme', text: 'hi' })).status).toBe(200);
    }
    const refused = await sendMessage(gateway.url, { user_id: 'e', tenant_id: 'acme', text: 'hi' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit-policy')).toBe('"user";q=3;w=60, "tenant";q=4;w=60');
    // The tenant refused, and user e's own rule was not charged: it still has all 3.
    expect(refused.headers.get('ratelimit')).toMatch(/^"user";r=3;t=0, "tenant";r=0;t=\d+$/);
    const again = await sendMessage(gateway.url, { user_id: 'e', tenant_id: 'acme', text: 'hi' });
    expect(again.headers.get('ratelimit')).toMatch(/^"user";r=3;t=0, /);
  });

  it('holds several windows per rule at once, and never limits an exempt user', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: ['2/m', '3/h'], exempt_users: ['VIP'] })]));
    for (let i = 0; i < 2; i++) expect((await sendMessage(gateway.url, { user_id: 'u', text: 'hi' })).status).toBe(200);
    const refused = await sendMessage(gateway.url, { user_id: 'u', text: 'hi' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit-policy')).toBe('"user-1m";q=2;w=60, "user-1h";q=3;w=3600');
    // The minute window refused; the hour window was not charged for it (2 used of 3).
    expect(refused.headers.get('ratelimit')).toMatch(/^"user-1m";r=0;t=\d+, "user-1h";r=1;t=\d+$/);
    for (let i = 0; i < 5; i++) {
      const vip = await sendMessage(gateway.url, { user_id: ' vip ', text: 'hi' });
      expect(vip.status).toBe(200);
      expect(vip.headers.get('x-ratelimit-limit')).toBeNull();
    }
  });

  it('never lets a user or tenant id into a response or a log line during a flood', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '2/m', by_tenant: '100/m', by_tool: { search: '1/m' } })]));
    const user = 'Alice.Secret@Example.com';
    const tenant = 'Acme-Hidden-Corp';
    const bodies: string[] = [];
    const headerValues: string[] = [];
    for (const text of ['hi', '/search a', '/search b', 'hi', 'hi', 'hi']) {
      const result = await sendMessage(gateway.url, { user_id: user, tenant_id: tenant, text });
      bodies.push(result.raw);
      result.headers.forEach((value) => headerValues.push(value));
    }
    expect(bodies.some((b) => b.includes('rate_limited'))).toBe(true);
    await gateway.stop();
    const logText = gateway.stdout.join('\n');
    expect(logText).toContain('rate limit exceeded');
    for (const text of [...bodies, ...headerValues, logText, gateway.stderr.join('\n')]) {
      const lower = text.toLowerCase();
      expect(lower).not.toContain('alice.secret');
      expect(lower).not.toContain('acme-hidden');
    }
  });
});
