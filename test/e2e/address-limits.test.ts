import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { discordSigner, fixture } from '../support/platforms.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import { logLines, postRaw, rateLimiterEntry, startGateway, type RunningGateway } from './support/gateway-process.ts';

/**
 * Per-address limits through real gateway processes: the client address the gateway sees (socket,
 * trusted proxies), limits decided before a body is read, failed authentication that costs extra,
 * deny and exempt lists, and one address bucket shared by two gateways on one Redis.
 */

const TOKEN = 'the-right-admin-token-0123456789';

const gateways: RunningGateway[] = [];
let redis: RedisProcess | undefined;
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await redis?.stop();
  redis = undefined;
});

interface Options {
  http?: Record<string, unknown>;
  channels?: Record<string, unknown>;
  limiter: Record<string, unknown>;
}

async function start({ http = {}, channels = {}, limiter }: Options): Promise<RunningGateway> {
  const gateway = await startGateway({
    channels: { http: { host: '127.0.0.1', port: 0, ...http }, ...channels },
    plugins: [rateLimiterEntry(limiter)],
  });
  gateways.push(gateway);
  return gateway;
}

/** POST /v1/messages with extra headers (a proxy's X-Forwarded-For). */
function message(gateway: RunningGateway, headers: Record<string, string> = {}, user = 'alice') {
  return postRaw(gateway.url, '/v1/messages', JSON.stringify({ user_id: user, text: 'hi' }), headers);
}

async function statuses(count: number, send: (i: number) => Promise<{ status: number }>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await send(i)).status);
  return out;
}

async function metrics(gateway: RunningGateway): Promise<string> {
  return (await fetch(`${gateway.url}/metrics`, { headers: { 'x-forwarded-for': '192.0.2.250' } })).text();
}

/** The value of one /metrics series, 0 when it is not there yet. */
function series(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('the client address a gateway counts', () => {
  it('ignores X-Forwarded-For from a peer that is no trusted proxy: rotating values still share one bucket', async () => {
    const gateway = await start({ limiter: { by_address: { rate: '3/h' } } });
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => message(gateway, { 'x-forwarded-for': `198.51.100.${i + 1}` })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 429, 429]);
    const refused = results.find((r) => r.status === 429)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.body).toEqual({
      error: 'rate_limited',
      reply: expect.stringMatching(/^Too many requests from your network\. Please wait \d+ minutes? and try again\.$/),
      retry_after: Number(refused.headers.get('retry-after')),
    });
  });

  it('behind a trusted proxy, counts the right-most untrusted address: two clients apart, spoofed hops ignored', async () => {
    const gateway = await start({ http: { trusted_proxies: ['127.0.0.1/32', '10.0.0.0/8'] }, limiter: { by_address: { rate: '2/h' } } });
    // What a client writes itself (left of its real address) changes nothing; the proxies after it are skipped.
    const clientA = (i: number) => message(gateway, { 'x-forwarded-for': `6.6.6.${i}, 203.0.113.10, 10.0.0.1` });
    const clientB = () => message(gateway, { 'x-forwarded-for': '203.0.113.20' });
    expect(await statuses(4, clientA)).toEqual([200, 200, 429, 429]);
    expect(await statuses(3, clientB)).toEqual([200, 200, 429]);
  });

  it('counts the IPv6 addresses of one /64 together and another /64 apart', async () => {
    const gateway = await start({ http: { trusted_proxies: ['127.0.0.1'] }, limiter: { by_address: { rate: '3/h' } } });
    const from = (address: string) => () => message(gateway, { 'x-forwarded-for': address });
    expect((await from('2001:db8:aa:1::1')()).status).toBe(200);
    expect((await from('2001:db8:aa:1:ffff:0:0:2')()).status).toBe(200);
    expect((await from('2001:DB8:AA:1::3')()).status).toBe(200);
    expect((await from('2001:db8:aa:1::4')()).status).toBe(429);
    expect(await statuses(4, from('2001:db8:aa:2::1'))).toEqual([200, 200, 200, 429]);
  });
});

describe('a refused request costs no body read', () => {
  it('gets its 429 while the client still holds the body open', async () => {
    const gateway = await start({ limiter: { by_address: { rate: '1/h' } } });
    expect((await message(gateway)).status).toBe(200);
    const port = Number(new URL(gateway.url).port);
    const { response, closedByServer, openAfterAnswerMs } = await rawRequest(
      port,
      'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{"user_id": "al',
      0,
    );
    expect(response).toMatch(/^HTTP\/1\.1 429 /);
    expect(response).toMatch(/\r\nretry-after: \d+\r\n/i);
    // Closed right after the answer, not left waiting for the rest of the body (or an idle timeout).
    expect(closedByServer).toBe(true);
    expect(openAfterAnswerMs).toBeLessThan(2_000);
  });

  it('never takes in a huge body: the connection closes after the 429, long before the body could be sent', async () => {
    const BODY = 256 * 1024 * 1024;
    const gateway = await start({ http: { max_body_bytes: BODY + 1 }, limiter: { by_address: { routes: { messages: '1/h' } } } });
    expect((await message(gateway)).status).toBe(200);
    const port = Number(new URL(gateway.url).port);
    const { response, closedByServer, bytesWritten } = await rawRequest(
      port,
      `POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${BODY}\r\n\r\n`,
      BODY,
    );
    expect(response).toMatch(/^HTTP\/1\.1 429 /);
    expect(closedByServer).toBe(true);
    // What the kernel's buffers took before the gateway closed: a few MB, not the 256 MB offered.
    expect(bytesWritten).toBeLessThan(BODY / 8);
    // The refused request never became a message.
    expect(series(await metrics(gateway), 'floodgate_replies_total{channel="http",kind="answer"}')).toBe(1);
  });
});

describe('failed authentication counts extra', () => {
  it('locks a bad-signature flood on the Discord webhook out, and its signatures stop being checked', async () => {
    const signer = discordSigner();
    const gateway = await start({
      http: { trusted_proxies: ['127.0.0.1'] },
      channels: { discord: { enabled: true, public_key: signer.publicKey } },
      limiter: { by_user: '100/m', by_address: { rate: '1000/h', routes: { webhooks: '30/h' }, failed_auth_cost: 10 } },
    });
    const body = JSON.stringify(fixture('discord', 'ping'));
    const forged = { ...discordSigner().headers(body, nowSeconds()), 'x-forwarded-for': '203.0.113.66' };
    const flood = await statuses(40, () => postRaw(gateway.url, '/discord/interactions', body, forged));
    // Three guesses cost 10 each (30 of 30), then every request is refused before its body is read.
    expect(flood.slice(0, 3)).toEqual([401, 401, 401]);
    expect(flood.slice(3)).toEqual(Array(37).fill(429));
    const after = await metrics(gateway);
    expect(series(after, 'floodgate_http_auth_failures_total{route_group="webhooks"}')).toBe(3);
    expect(series(after, 'floodgate_ratelimit_decisions_total{hook="preRequest",outcome="refused",rule="address"}')).toBe(37);
    // A correctly signed request from that address waits too; Discord's own address is served.
    const signed = signer.headers(body, nowSeconds());
    expect((await postRaw(gateway.url, '/discord/interactions', body, { ...signed, 'x-forwarded-for': '203.0.113.66' })).status).toBe(429);
    const discord = await postRaw(gateway.url, '/discord/interactions', body, { ...signed, 'x-forwarded-for': '198.51.100.5' });
    expect([discord.status, discord.body]).toEqual([200, { type: 1 }]);
    // The flood left the signature checks alone after the lockout: still 3 failures counted.
    expect(series(await metrics(gateway), 'floodgate_http_auth_failures_total{route_group="webhooks"}')).toBe(3);
  });

  it('locks an admin-token guessing run out: even the right token waits until the retry time, and the log names the hashed address once', async () => {
    const gateway = await start({
      http: { admin_token: TOKEN },
      limiter: { by_user: '30/m', by_address: { rate: '1000/h', routes: { admin: '10/6s' }, failed_auth_cost: 10 } },
    });
    const admin = (token: string) => fetch(`${gateway.url}/v1/admin/limits?user_id=alice`, { headers: { authorization: `Bearer ${token}` } });
    expect((await admin(TOKEN)).status).toBe(200);
    const guesses = await statuses(15, (i) => admin(`guess-number-${i}-abcdefghijkl`));
    expect(guesses[0]).toBe(401);
    expect(guesses.slice(1)).toEqual(Array(14).fill(429));
    const locked = await admin(TOKEN);
    expect(locked.status).toBe(429);
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(6);
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 200));
    expect((await admin(TOKEN)).status).toBe(200);
    // Other routes of that address were never affected.
    expect((await message(gateway)).status).toBe(200);

    await gateway.stop();
    const lockouts = logLines(gateway, 'client address locked out of the admin API');
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]).toMatchObject({ route_group: 'admin', subject: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const everything = gateway.stdout.join('\n') + gateway.stderr.join('\n');
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('guess-number');
    expect(JSON.stringify(lockouts)).not.toContain('127.0.0.1');
  });
});

describe('deny and exempt lists', () => {
  it('refuses denied addresses on every route and denied users and tenants kindly; never limits exempt addresses; logs no ids', async () => {
    const gateway = await start({
      http: { trusted_proxies: ['127.0.0.1'] },
      limiter: {
        by_user: '100/m',
        by_address: { rate: '2/h', exempt: ['198.51.100.0/24'], deny: ['203.0.113.0/24'] },
        deny_users: ['Mallory.Denied'],
        deny_tenants: ['evilcorp-denied'],
      },
    });
    const denied = { 'x-forwarded-for': '203.0.113.77' };
    const forbidden = await message(gateway, denied);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toEqual({ error: 'forbidden', reply: expect.stringMatching(/^Sorry, I can't take messages from you here\./) });
    expect((await fetch(`${gateway.url}/healthz`, { headers: denied })).status).toBe(403);
    expect((await fetch(`${gateway.url}/metrics`, { headers: denied })).status).toBe(403);

    expect(await statuses(6, () => message(gateway, { 'x-forwarded-for': '198.51.100.9' }))).toEqual(Array(6).fill(200));

    const ok = { 'x-forwarded-for': '192.0.2.33' };
    const mallory = await message(gateway, ok, ' mallory.denied ');
    expect([mallory.status, mallory.body?.error]).toEqual([403, 'forbidden']);
    const tenant = await postRaw(gateway.url, '/v1/messages', JSON.stringify({ user_id: 'bob', tenant_id: 'EvilCorp-Denied', text: 'hi' }), { 'x-forwarded-for': '192.0.2.34' });
    expect(tenant.status).toBe(403);
    expect((await message(gateway, { 'x-forwarded-for': '192.0.2.35' }, 'bob')).status).toBe(200);

    await gateway.stop();
    const log = gateway.stdout.join('\n').toLowerCase();
    expect(log).toContain('user on a deny list; request refused');
    expect(log).toContain('address on a deny list; request refused');
    for (const id of ['mallory', 'evilcorp', '203.0.113.77', '198.51.100.9', '192.0.2.33']) expect(log).not.toContain(id);
  });
});

describe.skipIf(!redisTestsEnabled())('by_address on Redis', () => {
  it('two gateways on one redis-server share one address bucket', async () => {
    redis = await startRedis();
    const limiter = { by_address: { rate: '4/h' }, backend: 'redis', redis_url: redis.url, redis_timeout_ms: 1000 };
    const [a, b] = await Promise.all([start({ limiter }), start({ limiter })]);
    const results = await statuses(8, (i) => message(i % 2 === 0 ? a! : b!));
    expect(results).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
    for (const gateway of [a!, b!]) expect(logLines(gateway, 'redis backend failing')).toEqual([]);
  });
});

/**
 * Writes `head` on a raw socket, then `bodyBytes` of body (0: none, the body stays open) as fast as
 * the socket takes them, and resolves once the server has answered and closed the connection (or
 * after 10 s): what it answered, and how much of the body the socket took before it closed.
 */
function rawRequest(
  port: number,
  head: string,
  bodyBytes: number,
): Promise<{ response: string; closedByServer: boolean; bytesWritten: number; openAfterAnswerMs: number }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let closedByServer = false;
    let answeredAt = 0;
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let sent = 0;
    const timer = setTimeout(() => socket.destroy(), 10_000);
    const pump = () => {
      while (sent < bodyBytes && socket.writable) {
        sent += chunk.length;
        if (!socket.write(chunk)) return;
      }
    };
    socket.on('connect', () => {
      socket.write(head);
      pump();
    });
    socket.on('drain', pump);
    socket.on('data', (data) => {
      if (response === '') answeredAt = performance.now();
      response += data.toString('latin1');
    });
    socket.on('end', () => (closedByServer = true));
    // Writing into a connection the server closed fails; that is what is expected here.
    socket.on('error', () => (closedByServer = true));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, closedByServer, bytesWritten: socket.bytesWritten, openAfterAnswerMs: performance.now() - answeredAt });
    });
  });
}
