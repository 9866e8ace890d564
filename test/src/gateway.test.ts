import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../src/bus/messages.ts';
import { ManualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ErrorCode } from '../../src/errors.ts';
import { Gateway } from '../../src/gateway.ts';
import { captureLogs } from './support/logs.ts';
import { httpRequest, postMessage } from './support/http-client.ts';

const CONFIG_PATH = join(fileURLToPath(new URL('../fixtures/', import.meta.url)), 'config.json');

function probe(name: string, config: Record<string, unknown>, fields: Record<string, unknown> = {}) {
  return { name, path: './plugins/probe/index.ts', config, ...fields };
}

async function startGateway(config: Record<string, unknown>) {
  const logs = captureLogs();
  const loaded = parseConfig(
    JSON.stringify({ channels: { http: { port: 0, reply_timeout_ms: 5_000 } }, ...config }),
    CONFIG_PATH,
  );
  const gateway = await Gateway.start({ loaded, logger: logs.logger, clock: new ManualClock(0) });
  onTestFinished(() => gateway.stop());
  return { gateway, logs, port: gateway.http!.port };
}

describe('Gateway', () => {
  it('answers over HTTP through the agent, with the plugins’ headers', async () => {
    const { port, logs } = await startGateway({ plugins: [probe('probe', { greeting: 'hello' })] });
    const res = await postMessage(port, { user_id: 'alice', conversation_id: 'c1', text: '/ECHO hi' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ reply: 'hi', conversation_id: 'c1' });
    expect(res.headers['x-probe']).toBe('hello');
    expect(logs.records().filter((r) => r.event === 'preToolInvoke').map((r) => r.tool)).toEqual(['echo']);
  });

  it('turns an enforcing plugin’s refusal into a 429 with its headers', async () => {
    const { port } = await startGateway({ plugins: [probe('probe', { greeting: 'x', refuse_prompts: true })] });
    const res = await postMessage(port, { user_id: 'alice', text: 'hi' });
    expect(res.status).toBe(429);
    expect(res.json()).toEqual({ error: 'rate_limited', reply: 'Slow down, please.', retry_after: 7 });
    expect(res.headers['retry-after']).toBe('7');
  });

  it('lets a message through when the refusing plugin is permissive', async () => {
    const { port } = await startGateway({
      plugins: [probe('probe', { greeting: 'x', refuse_prompts: true }, { mode: 'permissive' })],
    });
    expect((await postMessage(port, { user_id: 'alice', text: 'hi' })).status).toBe(200);
  });

  it('logs the plugins and channels it started', async () => {
    const { logs } = await startGateway({ plugins: [probe('probe', { greeting: 'x' })] });
    expect(logs.withMessage('gateway started')).toEqual([
      expect.objectContaining({ plugins: ['probe'], channels: ['http'] }),
    ]);
  });

  it('stop closes the port and tears the plugins down, once', async () => {
    const { gateway, port, logs } = await startGateway({
      plugins: [probe('a', { greeting: 'a' }), probe('b', { greeting: 'b' })],
    });
    await Promise.all([gateway.stop(), gateway.stop()]);
    expect(logs.records().filter((r) => r.event === 'teardown').map((r) => r.plugin)).toEqual(['b', 'a']);
    expect(logs.withMessage('gateway stopped')).toHaveLength(1);
    await expect(httpRequest(port, { path: '/healthz' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('refuses to start on a plugin config problem, before any channel listens', async () => {
    const logs = captureLogs();
    const loaded = parseConfig(
      JSON.stringify({ channels: { http: { port: 0 } }, plugins: [probe('probe', { greeting: 1 })] }),
      CONFIG_PATH,
    );
    await expect(Gateway.start({ loaded, logger: logs.logger })).rejects.toMatchObject({
      code: ErrorCode.PluginConfig,
      problems: ['plugins[0] (probe).config.greeting: expected string, got number 1'],
    });
    expect(logs.withMessage('http channel listening')).toHaveLength(0);
  });

  it('tears the plugins down again when a channel cannot start', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const taken = (blocker.address() as { port: number }).port;
    const logs = captureLogs();
    const loaded = parseConfig(
      JSON.stringify({ channels: { http: { port: taken } }, plugins: [probe('probe', { greeting: 'x' })] }),
      CONFIG_PATH,
    );
    await expect(Gateway.start({ loaded, logger: logs.logger })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(logs.records().filter((r) => r.event === 'teardown').map((r) => r.plugin)).toEqual(['probe']);
  });
});

describe('Gateway: GET /metrics', () => {
  it('serves Prometheus text with replies counted by channel and kind, and no ids', async () => {
    const { port } = await startGateway({ plugins: [probe('probe', { greeting: 'x', refuse_prompts: true })] });
    await postMessage(port, { user_id: 'alice-metrics', text: 'hi' });
    await postMessage(port, { user_id: 'alice-metrics', text: 'hi' });
    const res = await httpRequest(port, { method: 'GET', path: '/metrics' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.text).toContain('# TYPE floodgate_replies_total counter');
    expect(res.text).toContain('floodgate_replies_total{channel="http",kind="refused"} 2');
    expect(res.text).not.toContain('alice');
  });
});

describe('Gateway: a reload that fails', () => {
  const ADMIN_TOKEN = 'admin-token-for-reload-tests';
  const channels = { http: { port: 0, reply_timeout_ms: 5_000, admin_token: ADMIN_TOKEN } };
  const stager = (label: string) => ({
    name: 's',
    path: './plugins/stager/index.ts',
    config: { label, provide: true, route: '/v1/admin/stager', metric: 'fg_stager_seen_total', restart_only: true },
  });
  const counter = (label: string) => ({ name: 'counter', path: './plugins/counter/index.ts', config: { label } });
  const plugins = (generation: 1 | 2) => [
    counter(generation === 1 ? 'old' : 'new'),
    stager(generation === 1 ? 'one' : 'two'),
    probe('p', { greeting: generation === 1 ? 'p1' : 'p2' }),
  ];

  /** What the gateway answers: a message's plugin headers, the plugin's admin route, its metric. */
  async function answers(port: number) {
    const message = await postMessage(port, { user_id: 'alice', text: 'hi' });
    const route = await httpRequest(port, { path: '/v1/admin/stager', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const metrics = await httpRequest(port, { path: '/metrics' });
    return {
      status: message.status,
      headers: ['x-count', 'x-label', 'x-s', 'x-probe'].map((name) => message.headers[name]),
      route: route.json(),
      seen: /^fg_stager_seen_total (\d+)$/m.exec(metrics.text)?.[1],
    };
  }

  it('leaves the gateway answering exactly as before; the same reload without the failing plugin then applies', async () => {
    const { gateway, port } = await startGateway({ channels, plugins: plugins(1) });
    expect(await answers(port)).toEqual({ status: 200, headers: ['1', 'old', 'one', 'p1'], route: { label: 'one' }, seen: '1' });

    const failing = parseConfig(
      JSON.stringify({ channels, plugins: [...plugins(2), { name: 'fragile', path: './plugins/failing-setup/index.ts' }] }),
      CONFIG_PATH,
    );
    await expect(gateway.reload(failing)).rejects.toMatchObject({
      code: ErrorCode.PluginLoad,
      message: 'plugin "fragile" failed to start: database unreachable',
    });
    // Same instances (the count and the metric go on), same configs.
    expect(await answers(port)).toEqual({ status: 200, headers: ['2', 'old', 'one', 'p1'], route: { label: 'one' }, seen: '2' });

    const summary = await gateway.reload(parseConfig(JSON.stringify({ channels, plugins: plugins(2) }), CONFIG_PATH));
    expect(summary).toMatchObject({ reconfigured: ['counter'], restarted: ['s', 'p'] });
    expect(await answers(port)).toEqual({ status: 200, headers: ['3', 'new', 'two', 'p2'], route: { label: 'two' }, seen: '1' });
  });
});

describe('Gateway: answering', () => {
  it('tells the bus of each message and of its reply, as facts for observers', async () => {
    const { gateway, port } = await startGateway({});
    const events: [string, InboundMessage | OutboundReply][] = [];
    gateway.bus.on('message:in', (message) => events.push(['in', message]));
    gateway.bus.on('message:out', (reply) => events.push(['out', reply]));
    const res = await postMessage(port, { user_id: 'alice', conversation_id: 'c1', text: '/echo observed' });
    expect(res.json()).toEqual({ reply: 'observed', conversation_id: 'c1' });
    expect(events.map(([kind]) => kind)).toEqual(['in', 'out']);
    const [[, message], [, reply]] = events as [[string, InboundMessage], [string, OutboundReply]];
    expect(message).toMatchObject({ channel: 'http', userId: 'alice', conversationId: 'c1', text: '/echo observed' });
    // The client's signal is the message's: the agent and its hooks learn when nobody waits any more.
    expect(message.signal).toBeInstanceOf(AbortSignal);
    expect(reply).toMatchObject({ messageId: message.id, channel: 'http', kind: 'answer', text: 'observed' });
  });

  it('answers whatever the bus listeners do: one that throws is logged once per 10 s and changes nothing', async () => {
    const { gateway, port, logs } = await startGateway({});
    gateway.bus.on('message:in', () => {
      throw new Error('observer of messages exploded');
    });
    gateway.bus.on('message:out', () => {
      throw new Error('observer of replies exploded');
    });
    for (const text of ['/echo one', '/echo two']) {
      const res = await postMessage(port, { user_id: 'u', text });
      expect(res.status).toBe(200);
      expect(res.json()).toMatchObject({ reply: text.slice(6) });
    }
    expect(logs.withMessage('bus listener failed').map((r) => [r.event, r.err_message])).toEqual([
      ['message:in', 'observer of messages exploded'],
      ['message:out', 'observer of replies exploded'],
    ]);
  });

  it('answers a direct call as a channel would, counting the reply', async () => {
    const { gateway, port } = await startGateway({});
    const message: InboundMessage = { id: 'm1', channel: 'embedded', userId: 'u', conversationId: 'c', text: '/echo direct', receivedAt: 0 };
    expect(await gateway.answer(message)).toMatchObject({ messageId: 'm1', channel: 'embedded', kind: 'answer', text: 'direct' });
    const metrics = await httpRequest(port, { path: '/metrics' });
    expect(metrics.text).toContain('floodgate_replies_total{channel="embedded",kind="answer"} 1');
  });

  it('on a reply timeout stops the agent\'s work, and stop() waits for it before tearing the plugins down', async () => {
    const { gateway, port, logs } = await startGateway({
      channels: { http: { port: 0, reply_timeout_ms: 50 } },
      plugins: [probe('probe', { greeting: 'x' })],
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let hookSignal: AbortSignal | undefined;
    gateway.runner.register({
      plugin: 'slow',
      hook: 'prePromptFetch',
      priority: 0,
      mode: 'enforce',
      onError: 'fail_open',
      handler: async (_payload, call) => {
        hookSignal = call?.signal;
        await gate;
        return { continue: true };
      },
    });
    const replies: OutboundReply[] = [];
    gateway.bus.on('message:out', (reply) => replies.push(reply));
    const res = await postMessage(port, { user_id: 'u', text: 'slow' });
    expect(res.status).toBe(504);
    // The channel gave up: the agent's work is told to stop, so what its hooks hold is let go.
    expect(hookSignal?.aborted).toBe(true);
    expect(replies).toEqual([]);

    let stopped = false;
    const stopping = gateway.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    expect(logs.records().filter((r) => r.event === 'teardown')).toEqual([]);
    release();
    await stopping;
    expect(replies.map((r) => r.kind)).toEqual(['answer']);
    expect(logs.records().filter((r) => r.event === 'teardown').map((r) => r.plugin)).toEqual(['probe']);
    // Counted once, though nobody waited for it any more.
    expect(gateway.metrics.render()).toContain('floodgate_replies_total{channel="http",kind="answer"} 1');
  });
});
