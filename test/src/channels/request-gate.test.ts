import { IncomingMessage } from 'node:http';
import { connect, Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { AdminRoutes } from '../../../src/channels/admin.ts';
import { HttpChannel } from '../../../src/channels/http.ts';
import { ManualClock } from '../../../src/clock.ts';
import { GatewayConfigSchema } from '../../../src/config/schema.ts';
import { RequestScreen } from '../../../src/channels/request-screen.ts';
import { RequestHooks } from '../../../src/hooks/request-hooks.ts';
import { HookRunner, type HookCall, type HookHandler } from '../../../src/hooks/runner.ts';
import type { HookName, HookPayload, HookResult, Violation } from '../../../src/hooks/schemas.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { fakeAgent, held } from '../support/agent.ts';
import { httpRequest } from '../support/http-client.ts';
import { captureLogs } from '../support/logs.ts';

const TOKEN = 'admin-token-0123456789';

function answer(message: InboundMessage): OutboundReply {
  return { messageId: message.id, channel: message.channel, conversationId: message.conversationId, kind: 'answer', status: 200, text: 'hi', headers: {}, silent: false };
}

const TOO_MANY: Violation = {
  code: 'too_many_requests',
  reason: 'test',
  description: 'Slow down, please.',
  httpStatus: 429,
  retryAfter: 7,
  headers: { 'X-Test': 'yes' },
  details: {},
};

interface Registered {
  hook: HookName;
  handler: HookHandler<HookName>;
  mode?: 'enforce' | 'permissive';
  onError?: 'fail_open' | 'fail_closed';
}

/** A real HTTP channel with the gateway's request hooks over a real hook runner, and the routes a gateway mounts. */
async function startChannel(registered: Registered[], http: Record<string, unknown> = {}) {
  const logs = captureLogs();
  const clock = new ManualClock(Date.UTC(2025, 0, 1));
  const runner = new HookRunner(logs.logger, clock, 200);
  for (const [i, r] of registered.entries()) {
    runner.register({ plugin: `p${i}`, hook: r.hook, handler: r.handler, priority: i, mode: r.mode ?? 'enforce', onError: r.onError ?? 'fail_open' });
  }
  const metrics = new MetricsRegistry();
  const agent = fakeAgent(answer);
  const config = GatewayConfigSchema.parse({ channels: { http: { port: 0, max_body_bytes: 1 << 20, ...http } } }).channels.http;
  const channel = new HttpChannel({ agent, logger: logs.logger, clock }, config, new RequestHooks(runner, metrics));
  let routeBodies = 0;
  channel.mount('GET', '/metrics', async () => ({ status: 200, text: 'm' }), 'metrics');
  channel.mount(
    'POST',
    '/webhook',
    async ({ headers }) => {
      routeBodies++;
      return headers['x-secret'] === 's3cret' ? { status: 200, body: {} } : { status: 401, body: { error: 'unauthorized' } };
    },
    'webhooks',
  );
  new AdminRoutes(channel, TOKEN, clock).add('test', 'GET', '/v1/admin/things', async () => ({ status: 200, body: { things: [] } }));
  await channel.start();
  onTestFinished(() => channel.stop());
  return { channel, port: channel.port, agent, metrics, logs, routeBodies: () => routeBodies };
}

/** A handler that records what it was asked and answers `result`. */
function recorder(result: (payload: HookPayload<'preRequest'>) => HookResult | Promise<HookResult>) {
  const seen: { payload: HookPayload<'preRequest'>; call: HookCall | undefined }[] = [];
  const handler = ((payload: HookPayload<'preRequest'>, call?: HookCall) => {
    seen.push({ payload, call });
    return result(payload);
  }) as HookHandler<HookName>;
  return { seen, handler };
}

const refuse = (): HookResult => ({ continue: false, violation: TOO_MANY });
const pass = (): HookResult => ({ continue: true });

/**
 * Sends a request's head and the start of its body over a raw socket, holds the rest back, and
 * resolves with what the server sent once it closed the connection (or after `waitMs`).
 */
function holdBodyOpen(port: number, head: string, firstBytes: string, waitMs = 5_000): Promise<{ response: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closedByServer: false });
    }, waitMs);
    socket.on('connect', () => socket.write(head + firstBytes));
    socket.on('data', (chunk) => (response += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response, closedByServer: true });
    });
  });
}

describe('HttpChannel request checks (preRequest), before any body is read', () => {
  it('refuses with the violation: its status, Retry-After, headers and reply, and the agent never hears of it', async () => {
    const check = recorder(refuse);
    const { port, agent } = await startChannel([{ hook: 'preRequest', handler: check.handler }]);
    const text = JSON.stringify({ user_id: 'alice', text: 'hi' });
    const res = await httpRequest(port, { method: 'POST', path: '/v1/messages', headers: { 'content-length': Buffer.byteLength(text) }, body: text });
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.headers['x-test']).toBe('yes');
    expect(res.json()).toEqual({ error: 'too_many_requests', reply: 'Slow down, please.', retry_after: 7 });
    expect(agent.received).toHaveLength(0);
    expect(check.seen.map((s) => s.payload)).toEqual([{ address: '127.0.0.1', route_group: 'messages', method: 'POST', path: '/v1/messages' }]);
  });

  it('answers while the client still holds its body open, and then closes the connection instead of reading it', async () => {
    const { port, agent } = await startChannel([{ hook: 'preRequest', handler: recorder(refuse).handler }]);
    const { response, closedByServer } = await holdBodyOpen(
      port,
      'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n',
      '{"user_id": "alice", "te',
    );
    expect(response).toMatch(/^HTTP\/1\.1 429 /);
    expect(response.toLowerCase()).toContain('connection: close');
    expect(response).toContain('"retry_after":7');
    expect(closedByServer).toBe(true);
    expect(agent.received).toHaveLength(0);
  });

  it('never tells a client that asks first (Expect: 100-continue) to send the body of a refused request; an admitted one is told', async () => {
    let refusing = true;
    const { port, agent } = await startChannel([{ hook: 'preRequest', handler: recorder(() => (refusing ? refuse() : pass())).handler }]);
    const head = 'POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 30\r\nexpect: 100-continue\r\n\r\n';
    const refused = await holdBodyOpen(port, head, '');
    expect(refused.response).toMatch(/^HTTP\/1\.1 429 /);
    expect(refused.response).not.toContain('100 Continue');
    refusing = false;
    const admitted = await holdBodyOpen(port, head, '', 500);
    expect(admitted.response).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    expect(agent.received).toHaveLength(0);
  });

  it('keeps the connection of a refused request without a body: the next request comes on it', async () => {
    const { port } = await startChannel([{ hook: 'preRequest', handler: recorder(refuse).handler }]);
    const twice = 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'.repeat(2);
    const { response } = await holdBodyOpen(port, twice, '', 500);
    expect(response.match(/HTTP\/1\.1 429 /g)).toHaveLength(2);
    expect(response.toLowerCase()).not.toContain('connection: close');
  });

  it('tells the check each route group: messages, webhooks, admin, metrics, health and the rest', async () => {
    const check = recorder(pass);
    const { port } = await startChannel([{ hook: 'preRequest', handler: check.handler }]);
    await httpRequest(port, { method: 'POST', path: '/v1/messages', body: '{}' });
    await httpRequest(port, { method: 'POST', path: '/webhook?x=1', body: '{}' });
    await httpRequest(port, { path: '/v1/admin/things' });
    await httpRequest(port, { path: '/v1/admin/guessed' });
    await httpRequest(port, { path: '/metrics' });
    await httpRequest(port, { method: 'HEAD', path: '/healthz' });
    await httpRequest(port, { path: '/nothing/here' });
    expect(check.seen.map((s) => [s.payload.route_group, s.payload.method, s.payload.path])).toEqual([
      ['messages', 'POST', '/v1/messages'],
      ['webhooks', 'POST', '/webhook'],
      ['admin', 'GET', '/v1/admin/things'],
      ['admin', 'GET', '/v1/admin/guessed'],
      ['metrics', 'GET', '/metrics'],
      ['health', 'HEAD', '/healthz'],
      ['other', 'GET', '/nothing/here'],
    ]);
  });

  it('waits for a check that answers later, and serves what it admits', async () => {
    const gate = held<HookResult>();
    const { port, agent } = await startChannel([{ hook: 'preRequest', handler: (() => gate.promise) as HookHandler<HookName> }]);
    const pending = httpRequest(port, { method: 'POST', path: '/v1/messages', body: JSON.stringify({ user_id: 'a', text: 'hi' }) });
    await new Promise((r) => setTimeout(r, 50));
    expect(agent.received).toHaveLength(0);
    gate.resolve({ continue: true });
    expect((await pending).status).toBe(200);
    expect(agent.received).toHaveLength(1);
  });

  it('follows the plugin entry: permissive refusals let the request through, fail_closed refuses a failing check with 503', async () => {
    const permissive = await startChannel([{ hook: 'preRequest', handler: recorder(refuse).handler, mode: 'permissive' }]);
    expect((await httpRequest(permissive.port, { path: '/healthz' })).status).toBe(200);

    const broken = (() => {
      throw new Error('boom');
    }) as HookHandler<HookName>;
    const closed = await startChannel([{ hook: 'preRequest', handler: broken, onError: 'fail_closed' }]);
    const refused = await httpRequest(closed.port, { path: '/healthz' });
    expect(refused.status).toBe(503);
    expect(refused.json()).toMatchObject({ error: 'plugin_unavailable' });

    const open = await startChannel([{ hook: 'preRequest', handler: broken }]);
    expect((await httpRequest(open.port, { path: '/healthz' })).status).toBe(200);
    // A check that never answers is given up on after the hook timeout.
    const hung = await startChannel([{ hook: 'preRequest', handler: (() => new Promise(() => {})) as HookHandler<HookName> }]);
    expect((await httpRequest(hung.port, { path: '/healthz' })).status).toBe(200);
  });

  it('sees the address a trusted proxy names, and ignores the header from anyone else', async () => {
    const check = recorder(pass);
    const trusted = await startChannel([{ hook: 'preRequest', handler: check.handler }], { trusted_proxies: ['127.0.0.1'] });
    await httpRequest(trusted.port, { path: '/healthz', headers: { 'x-forwarded-for': '6.6.6.6, 2001:DB8::1' } });
    const untrusted = await startChannel([{ hook: 'preRequest', handler: check.handler }], { trusted_proxies: ['10.0.0.0/8'] });
    await httpRequest(untrusted.port, { path: '/healthz', headers: { 'x-forwarded-for': '2001:db8::1' } });
    expect(check.seen.map((s) => s.payload.address)).toEqual(['2001:db8::1', '127.0.0.1']);
  });
});

describe('HttpChannel failed authentication (authFailed)', () => {
  it('tells authFailed of a route’s 401, with the call its preRequest got, and counts it by route group', async () => {
    const check = recorder(pass);
    const failed = recorder(pass);
    const { port, metrics, routeBodies } = await startChannel([
      { hook: 'preRequest', handler: check.handler },
      { hook: 'authFailed', handler: failed.handler },
    ]);
    expect((await httpRequest(port, { method: 'POST', path: '/webhook', headers: { 'x-secret': 's3cret' }, body: '{}' })).status).toBe(200);
    expect((await httpRequest(port, { method: 'POST', path: '/webhook', headers: { 'x-secret': 'guess' }, body: '{}' })).status).toBe(401);
    expect((await httpRequest(port, { path: '/v1/admin/things', headers: { authorization: 'Bearer wrong-token-000000' } })).status).toBe(401);
    expect((await httpRequest(port, { path: '/v1/admin/things', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(routeBodies()).toBe(2);
    expect(failed.seen.map((s) => s.payload)).toEqual([
      { address: '127.0.0.1', route_group: 'webhooks', method: 'POST', path: '/webhook' },
      { address: '127.0.0.1', route_group: 'admin', method: 'GET', path: '/v1/admin/things' },
    ]);
    expect(failed.seen[0]!.call).toBe(check.seen[1]!.call);
    expect(failed.seen[1]!.call).toBe(check.seen[2]!.call);
    const text = metrics.render();
    expect(text).toContain('floodgate_http_auth_failures_total{route_group="webhooks"} 1');
    expect(text).toContain('floodgate_http_auth_failures_total{route_group="admin"} 1');
    // The token is never in the facts, the metrics or the log.
    expect(JSON.stringify(failed.seen) + text).not.toContain('wrong-token');
  });

  it('sends the 401 only once authFailed has taken it in', async () => {
    const told = held<HookResult>();
    let heard = false;
    const { port } = await startChannel([
      {
        hook: 'authFailed',
        handler: (() => {
          heard = true;
          return told.promise;
        }) as HookHandler<HookName>,
      },
    ]);
    let answered = false;
    const pending = httpRequest(port, { method: 'POST', path: '/webhook', body: '{}' }).then((r) => {
      answered = true;
      return r;
    });
    for (let i = 0; i < 100 && !heard; i++) await new Promise((r) => setTimeout(r, 10));
    expect(heard).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    told.resolve({ continue: true });
    expect((await pending).status).toBe(401);
  });

  it('counts failed authentications with no plugin listening, and checks nothing', async () => {
    const { port, metrics } = await startChannel([]);
    expect((await httpRequest(port, { method: 'POST', path: '/webhook', body: '{}' })).status).toBe(401);
    expect(metrics.render()).toContain('floodgate_http_auth_failures_total{route_group="webhooks"} 1');
  });
});

describe('RequestScreen', () => {
  it('tells of a request whose connection has no address (it closed first) without one, and never throws', () => {
    const logs = captureLogs();
    const screen = new RequestScreen(undefined, { trusted_proxies: ['127.0.0.1'], forwarded_header: 'x-forwarded-for' }, logs.logger);
    const closed = new IncomingMessage(new Socket());
    closed.method = 'POST';
    closed.headers = { 'x-forwarded-for': '203.0.113.1' };
    expect(closed.socket.remoteAddress).toBeUndefined();
    expect(screen.facts(closed, '/v1/messages', 'messages')).toEqual({ route_group: 'messages', method: 'POST', path: '/v1/messages' });
    expect(screen.checking).toBe(false);
  });
});
