import { request } from 'node:http';
import { createServer } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { HttpChannel } from '../../../src/channels/http.ts';
import { TIMEOUT_REPLY } from '../../../src/channels/reply-timeout.ts';
import { ManualClock } from '../../../src/clock.ts';
import { GatewayConfigSchema, type HttpChannelConfig } from '../../../src/config/schema.ts';
import { aborted, fakeAgent, held, type Replier } from '../support/agent.ts';
import { captureLogs } from '../support/logs.ts';
import { httpRequest, postMessage } from '../support/http-client.ts';

const NOW = Date.UTC(2025, 0, 1);

function answer(message: InboundMessage, text: string, headers: Record<string, string> = {}): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'answer',
    status: 200,
    text,
    headers,
    silent: false,
  };
}

function refused(message: InboundMessage, fields: Partial<OutboundReply>): OutboundReply {
  return { ...answer(message, 'refused'), kind: 'refused', status: 429, ...fields };
}

/** An HttpChannel on a free port, whose agent answers each message as `replier` says. */
async function startChannel(http: Record<string, unknown> = {}, replier?: Replier) {
  const agent = fakeAgent(replier);
  const logs = captureLogs();
  const clock = new ManualClock(NOW);
  const config: HttpChannelConfig = GatewayConfigSchema.parse({
    channels: { http: { port: 0, max_body_bytes: 256, reply_timeout_ms: 5_000, ...http } },
  }).channels.http;
  const channel = new HttpChannel({ agent, logger: logs.logger, clock }, config);
  await channel.start();
  onTestFinished(() => channel.stop());
  return { channel, agent, logs, clock, received: agent.received, signals: agent.signals, port: channel.port };
}

const echo: Replier = (message) => answer(message, `echo: ${message.text}`);

describe('HttpChannel: server', () => {
  it('binds a free port when configured with port 0, and logs it', async () => {
    const { channel, logs } = await startChannel();
    expect(channel.port).toBeGreaterThan(0);
    expect(logs.withMessage('http channel listening')).toEqual([
      expect.objectContaining({ host: '127.0.0.1', port: channel.port }),
    ]);
  });

  it('GET /healthz answers 200 ok', async () => {
    const { port } = await startChannel();
    const res = await httpRequest(port, { path: '/healthz' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('HEAD /healthz and /healthz with a query string answer 200', async () => {
    const { port } = await startChannel();
    expect((await httpRequest(port, { method: 'HEAD', path: '/healthz' })).status).toBe(200);
    expect((await httpRequest(port, { path: '/healthz?from=lb' })).status).toBe(200);
  });

  it('answers 404 for an unknown route, naming it', async () => {
    const { port, received } = await startChannel({}, echo);
    const res = await httpRequest(port, { path: '/v2/messages?x=1' });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found', message: 'no route for /v2/messages' });
    expect(received).toHaveLength(0);
  });

  it('answers 405 with an Allow header for the wrong method', async () => {
    const { port, received } = await startChannel({}, echo);
    const get = await httpRequest(port, { path: '/v1/messages' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.json()).toEqual({ error: 'method_not_allowed', message: 'use POST' });
    const post = await httpRequest(port, { method: 'POST', path: '/healthz', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET');
    expect(received).toHaveLength(0);
  });

  it('fails to start when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const taken = (blocker.address() as { port: number }).port;
    const channel = new HttpChannel(
      { agent: fakeAgent(), logger: captureLogs().logger, clock: new ManualClock() },
      GatewayConfigSchema.parse({ channels: { http: { port: taken } } }).channels.http,
    );
    await expect(channel.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('HttpChannel: messages', () => {
  it('asks the agent about the message and answers 200 with the reply and conversation id', async () => {
    const { port, received, signals } = await startChannel({}, echo);
    const res = await postMessage(port, { user_id: 'alice', tenant_id: 'acme', conversation_id: 'conv-1', text: 'hi' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ reply: 'echo: hi', conversation_id: 'conv-1' });
    expect(received).toEqual([
      {
        id: expect.any(String),
        channel: 'http',
        userId: 'alice',
        tenantId: 'acme',
        conversationId: 'conv-1',
        text: 'hi',
        receivedAt: NOW,
      },
    ]);
    // The agent's signal aborts once the request is answered: what the agent holds for it is let go.
    expect(signals[0]).toBeInstanceOf(AbortSignal);
    await aborted(signals[0]);
  });

  it('starts a new conversation when none is given and returns its id', async () => {
    const { port, received } = await startChannel({}, echo);
    const first = (await postMessage(port, { user_id: 'alice', text: 'a' })).json() as { conversation_id: string };
    const second = (await postMessage(port, { user_id: 'alice', text: 'b' })).json() as { conversation_id: string };
    expect(first.conversation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.conversation_id).not.toBe(second.conversation_id);
    expect(received.map((m) => m.conversationId)).toEqual([first.conversation_id, second.conversation_id]);
    expect(received[0]).not.toHaveProperty('tenantId');
  });

  it('gives each message a distinct id', async () => {
    const { port, received } = await startChannel({}, echo);
    await postMessage(port, { user_id: 'a', text: 'x' });
    await postMessage(port, { user_id: 'a', text: 'x' });
    expect(new Set(received.map((m) => m.id)).size).toBe(2);
  });

  it('answers concurrent requests each with its own reply, whatever order the agent finishes them in', async () => {
    const pending: { message: InboundMessage; answer: (reply: OutboundReply) => void }[] = [];
    const { port } = await startChannel({}, (message) => {
      const later = held<OutboundReply>();
      pending.push({ message, answer: later.resolve });
      if (pending.length === 3) for (const p of [...pending].reverse()) p.answer(answer(p.message, `re: ${p.message.text}`));
      return later.promise;
    });
    const results = await Promise.all(['one', 'two', 'three'].map((text) => postMessage(port, { user_id: 'u', text })));
    expect(results.map((r) => (r.json() as { reply: string }).reply)).toEqual(['re: one', 're: two', 're: three']);
  });

  it('sets the headers of the reply on the response', async () => {
    const { port } = await startChannel({}, (message) =>
      answer(message, 'ok', { 'x-ratelimit-limit': '30', 'x-ratelimit-remaining': '29' }),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.status).toBe(200);
    expect(res.headers['x-ratelimit-limit']).toBe('30');
    expect(res.headers['x-ratelimit-remaining']).toBe('29');
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('drops a malformed reply header, logs it, and still answers', async () => {
    const { port, logs } = await startChannel({}, (message) =>
      answer(message, 'ok', { 'x-good': 'yes', 'x-bad-value': 'line\nbreak', 'bad name': 'v' }),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ reply: 'ok' });
    expect(res.headers['x-good']).toBe('yes');
    expect(res.headers).not.toHaveProperty('x-bad-value');
    expect(logs.withMessage('invalid reply header dropped').map((r) => r.header)).toEqual(['x-bad-value', 'bad name']);
    // The server survived: it answers the next request too.
    expect((await httpRequest(port, { path: '/healthz' })).status).toBe(200);
  });

  it('sends a header named twice (in any case) once: the later reply header, and ours over the reply\'s', async () => {
    const { port } = await startChannel({}, (message) =>
      answer(message, 'ok', { 'X-Twice': '1', 'Content-Type': 'text/plain', 'x-twice': '2', 'X-Once': 'yes' }),
    );
    const body = JSON.stringify({ user_id: 'u', text: 'hi' });
    const raw = await new Promise<string[]>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', agent: false, headers: { 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          resolve(res.rawHeaders);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    const pairs = [];
    for (let i = 0; i < raw.length; i += 2) if (raw[i] !== 'Date') pairs.push(`${raw[i]}: ${raw[i + 1]}`);
    expect(pairs).toEqual([
      'x-twice: 2',
      'content-type: application/json; charset=utf-8',
      'X-Once: yes',
      'cache-control: no-store',
      'content-length: 71',
      'Connection: close',
    ]);
  });

  it('answers a rate-limited refusal with 429, {error, reply, retry_after} and its headers', async () => {
    const { port } = await startChannel({}, (message) =>
      refused(message, {
        code: 'rate_limited',
        status: 429,
        text: 'Please wait 7 seconds.',
        retryAfter: 7,
        headers: { 'retry-after': '7' },
      }),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.status).toBe(429);
    expect(res.json()).toEqual({ error: 'rate_limited', reply: 'Please wait 7 seconds.', retry_after: 7 });
    expect(res.headers['retry-after']).toBe('7');
  });

  it('still answers a silent refusal (silent only mutes chat channels)', async () => {
    const { port } = await startChannel({}, (message) =>
      refused(message, { code: 'rate_limited', text: 'Slow down.', retryAfter: 3, silent: true }),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.status).toBe(429);
    expect(res.json()).toEqual({ error: 'rate_limited', reply: 'Slow down.', retry_after: 3 });
  });

  it('leaves retry_after and Retry-After out when a refusal does not know the wait', async () => {
    const { port } = await startChannel({}, (message) => refused(message, { code: 'rate_limited', text: 'Slow down.' }));
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.json()).toEqual({ error: 'rate_limited', reply: 'Slow down.' });
    expect(res.headers['retry-after']).toBeUndefined();
  });

  it('gives every kind of refusal with a retry time its retry_after and Retry-After', async () => {
    const { port } = await startChannel({}, (message) =>
      refused(message, { code: 'concurrency_limited', status: 429, text: 'One at a time.', retryAfter: 1 }),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.json()).toEqual({ error: 'concurrency_limited', reply: 'One at a time.', retry_after: 1 });
    expect(res.headers['retry-after']).toBe('1');
  });

  it('answers other refusals and errors with their status and code', async () => {
    const replies: Replier[] = [
      (m) => refused(m, { code: 'plugin_unavailable', status: 503, text: 'Try later.' }),
      (m) => ({ ...answer(m, 'Something went wrong.'), kind: 'error', status: 500, code: 'internal_error' }),
      (m) => ({ ...answer(m, 'No.'), kind: 'refused', status: 403 }),
    ];
    let next = 0;
    const { port } = await startChannel({}, (m) => replies[next++]!(m));
    const unavailable = await postMessage(port, { user_id: 'u', text: '1' });
    expect(unavailable.status).toBe(503);
    expect(unavailable.json()).toEqual({ error: 'plugin_unavailable', reply: 'Try later.' });
    const failed = await postMessage(port, { user_id: 'u', text: '2' });
    expect(failed.status).toBe(500);
    expect(failed.json()).toEqual({ error: 'internal_error', reply: 'Something went wrong.' });
    const uncoded = await postMessage(port, { user_id: 'u', text: '3' });
    expect(uncoded.status).toBe(403);
    expect(uncoded.json()).toEqual({ error: 'error', reply: 'No.' });
  });

  it('answers 504 when no reply arrives within reply_timeout_ms, stops the agent, and ignores the late reply', async () => {
    const late = held<OutboundReply>();
    const { port, received, signals, channel } = await startChannel({ reply_timeout_ms: 30 }, (message) =>
      message.text === 'anyone there?' ? late.promise : echo(message),
    );
    const res = await postMessage(port, { user_id: 'u', text: 'anyone there?' });
    expect(res.status).toBe(504);
    expect(res.json()).toEqual({ error: 'timeout', reply: TIMEOUT_REPLY });
    expect(TIMEOUT_REPLY).toBe('Sorry, that took too long. Please try again.');
    expect(received).toHaveLength(1);
    // The agent is told that nobody waits for its answer any more.
    expect(signals[0]!.aborted).toBe(true);
    expect(channel.waiting).toBe(0);
    // The reply finally comes: nobody is waiting, and the channel keeps working.
    late.resolve(answer(received[0]!, 'too late'));
    await new Promise((resolve) => setImmediate(resolve));
    const next = await postMessage(port, { user_id: 'u', text: 'again' });
    expect(next.status).toBe(200);
    expect(next.json()).toMatchObject({ reply: 'echo: again' });
  });

  it('times each request out on its own, reply_timeout_ms after it came', async () => {
    const { port, received } = await startChannel({ reply_timeout_ms: 400 }, (message) =>
      message.text === 'quick' ? answer(message, 'quick') : undefined,
    );
    const timed = async (text: string) => {
      const sent = Date.now();
      const res = await postMessage(port, { user_id: 'u', text });
      return { status: res.status, ms: Date.now() - sent };
    };
    const first = timed('slow 1');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = timed('slow 2');
    expect((await first).status).toBe(504);
    // Answered while the second still waits.
    expect((await postMessage(port, { user_id: 'u', text: 'quick' })).json()).toMatchObject({ reply: 'quick' });
    const { status, ms } = await second;
    expect(status).toBe(504);
    // Neither early nor counted from when the first timed out (that would be about 700 ms).
    expect(ms).toBeGreaterThanOrEqual(395);
    expect(ms).toBeLessThan(650);
    expect(received.map((m) => m.text)).toEqual(['slow 1', 'slow 2', 'quick']);
  });

  it('stops waiting when the client hangs up, and aborts the agent\'s signal', async () => {
    const { port, agent, signals, channel } = await startChannel({ reply_timeout_ms: 60_000 });
    const asked = agent.next();
    const body = JSON.stringify({ user_id: 'u', text: 'never mind' });
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', headers: { 'content-length': Buffer.byteLength(body) }, agent: false });
    req.on('error', () => {}); // the test hangs up itself
    req.end(body);
    await asked;
    expect(channel.waiting).toBe(1);
    expect(signals[0]!.aborted).toBe(false);
    req.destroy();
    // Long before the 60 s timeout.
    await aborted(signals[0]);
    expect(channel.waiting).toBe(0);
    expect((await httpRequest(port, { path: '/healthz' })).status).toBe(200);
  });

  it('answers 500 and logs it when the agent fails outright', async () => {
    const { port, logs } = await startChannel({}, () => Promise.reject(new Error('agent exploded')));
    const res = await postMessage(port, { user_id: 'u', text: 'hi' });
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ error: 'internal_error', reply: 'Sorry, something went wrong on our side. Please try again.' });
    expect(logs.withMessage('message handling failed').map((r) => r.err_message)).toEqual(['agent exploded']);
  });
});

describe('HttpChannel: request bodies', () => {
  it('answers 413 for a declared content-length over max_body_bytes, without publishing', async () => {
    const { port, received } = await startChannel({ max_body_bytes: 64 }, echo);
    const body = JSON.stringify({ user_id: 'u', text: 'x'.repeat(100) });
    const res = await httpRequest(port, {
      method: 'POST',
      path: '/v1/messages',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      body,
    });
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({ error: 'payload_too_large', message: 'body exceeds 64 bytes' });
    expect(received).toHaveLength(0);
  });

  it('answers 413 for a declared content-length over the limit without waiting for the body', async () => {
    const { port, received } = await startChannel({ max_body_bytes: 64 }, echo);
    // Only the first bytes of the announced 10 000 are ever sent.
    const res = await httpRequest(port, {
      method: 'POST',
      path: '/v1/messages',
      headers: { 'content-type': 'application/json', 'content-length': 10_000 },
      body: '{"user_id":',
    });
    expect(res.status).toBe(413);
    expect(received).toHaveLength(0);
  });

  it('answers 413 for a chunked body that grows over max_body_bytes, without publishing', async () => {
    const { port, received } = await startChannel({ max_body_bytes: 64 }, echo);
    const body = JSON.stringify({ user_id: 'u', text: 'x'.repeat(100) });
    const pieces = body.match(/.{1,20}/g)!;
    const res = await httpRequest(port, {
      method: 'POST',
      path: '/v1/messages',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: pieces,
    });
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({ error: 'payload_too_large', message: 'body exceeds 64 bytes' });
    expect(received).toHaveLength(0);
    // The server is still healthy afterwards.
    expect((await postMessage(port, { user_id: 'u', text: 'small' })).status).toBe(200);
  });

  it('accepts a body of exactly max_body_bytes, chunked or not', async () => {
    const base = JSON.stringify({ user_id: 'u', text: '' });
    const body = JSON.stringify({ user_id: 'u', text: 'y'.repeat(64 - Buffer.byteLength(base)) });
    expect(Buffer.byteLength(body)).toBe(64);
    const { port, received } = await startChannel({ max_body_bytes: 64 }, echo);
    expect((await postMessage(port, JSON.parse(body))).status).toBe(200);
    const chunked = await httpRequest(port, {
      method: 'POST',
      path: '/v1/messages',
      headers: { 'transfer-encoding': 'chunked' },
      body: body.match(/.{1,10}/g)!,
    });
    expect(chunked.status).toBe(200);
    expect(received).toHaveLength(2);
  });

  it.each([
    ['malformed JSON', '{"user_id": "u", "text": '],
    ['an empty body', ''],
  ])('answers 400 for %s', async (_label, body) => {
    const { port, received } = await startChannel({}, echo);
    const res = await httpRequest(port, { method: 'POST', path: '/v1/messages', body });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'body is not valid JSON' });
    expect(received).toHaveLength(0);
  });

  it.each([
    ['a missing user_id', { text: 'hi' }, 'user_id: required field is missing'],
    ['a missing text', { user_id: 'u' }, 'text: required field is missing'],
    ['an unknown field', { user_id: 'u', text: 'hi', colour: 'red' }, 'colour: unknown field'],
    ['a user_id of the wrong type', { user_id: 42, text: 'hi' }, 'user_id: expected a string'],
    ['a tenant_id of the wrong type', { user_id: 'u', tenant_id: ['t'], text: 'hi' }, 'tenant_id: expected a string'],
    ['an empty text', { user_id: 'u', text: '' }, 'text: must not be empty'],
    ['an empty conversation_id', { user_id: 'u', conversation_id: '', text: 'hi' }, 'conversation_id: must not be empty'],
    ['an overlong user_id', { user_id: 'u'.repeat(257), text: 'hi' }, 'user_id: must be at most 256 characters'],
    ['an array body', [{ user_id: 'u', text: 'hi' }], 'body: expected a JSON object'],
    ['a null body', null, 'body: expected a JSON object'],
  ])('answers 400 naming the field for %s', async (_label, body, problem) => {
    const { port, received } = await startChannel({ max_body_bytes: 4096 }, echo);
    const res = await postMessage(port, body);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: problem });
    expect(received).toHaveLength(0);
  });

  it('names every bad field in one 400', async () => {
    const { port } = await startChannel({}, echo);
    const res = await postMessage(port, { user_id: 7, text: '', extra: true });
    expect(res.status).toBe(400);
    const { message } = res.json() as { message: string };
    expect(message.split('; ').sort()).toEqual(
      ['extra: unknown field', 'text: must not be empty', 'user_id: expected a string'].sort(),
    );
  });
});

describe('HttpChannel: stop', () => {
  it('lets a message already in flight get its reply, then stops listening', async () => {
    const later = held<OutboundReply>();
    const { channel, agent, port } = await startChannel({}, () => later.promise);
    const inFlight = agent.next();
    const response = postMessage(port, { user_id: 'u', text: 'slow one' });
    const pending = await inFlight;
    const stopped = channel.stop();
    later.resolve(answer(pending, 'finished'));
    const res = await response;
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ reply: 'finished' });
    await stopped;
    expect(channel.port).toBe(0);
    await expect(httpRequest(port, { path: '/healthz' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('stopping a channel that never started, or twice, is harmless', async () => {
    const channel = new HttpChannel(
      { agent: fakeAgent(), logger: captureLogs().logger, clock: new ManualClock() },
      GatewayConfigSchema.parse({}).channels.http,
    );
    await expect(channel.stop()).resolves.toBeUndefined();
    await expect(channel.stop()).resolves.toBeUndefined();
  });
});

describe('HttpChannel: mounted routes', () => {
  it('serves a mounted route with the raw body and headers, answering with its JSON', async () => {
    const { channel, port } = await startChannel();
    const seen: { body: string; header: unknown }[] = [];
    channel.mount('POST', '/hooks/demo', async ({ body, headers }) => {
      seen.push({ body: body.toString('utf8'), header: headers['x-demo'] });
      return { status: 202, body: { accepted: true } };
    });
    const res = await httpRequest(port, { method: 'POST', path: '/hooks/demo?via=test', headers: { 'x-demo': 'yes' }, body: ' {"a": 1} ' });
    expect(res.status).toBe(202);
    expect(res.json()).toEqual({ accepted: true });
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(seen).toEqual([{ body: ' {"a": 1} ', header: 'yes' }]);
  });

  it('answers a route without a body as an empty response', async () => {
    const { channel, port } = await startChannel();
    channel.mount('POST', '/hooks/empty', async () => ({ status: 204 }));
    const res = await httpRequest(port, { method: 'POST', path: '/hooks/empty', body: '{}' });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
  });

  it('answers 405 with an Allow header for another method on a mounted path', async () => {
    const { channel, port } = await startChannel();
    channel.mount('POST', '/hooks/demo', async () => ({ status: 200, body: {} }));
    const res = await httpRequest(port, { path: '/hooks/demo' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
  });

  it('holds mounted routes to max_body_bytes (413), without calling the handler', async () => {
    const { channel, port } = await startChannel({ max_body_bytes: 64 });
    let called = false;
    channel.mount('POST', '/hooks/demo', async () => {
      called = true;
      return { status: 200, body: {} };
    });
    const res = await httpRequest(port, { method: 'POST', path: '/hooks/demo', body: 'x'.repeat(100).match(/.{1,25}/g)! });
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({ error: 'payload_too_large', message: 'body exceeds 64 bytes' });
    expect(called).toBe(false);
  });

  it('answers 500 when a handler throws or rejects, logs it, and keeps serving', async () => {
    const { channel, port, logs } = await startChannel();
    channel.mount('POST', '/hooks/throws', () => {
      throw new Error('sync failure');
    });
    channel.mount('POST', '/hooks/rejects', async () => {
      throw new Error('async failure');
    });
    for (const path of ['/hooks/throws', '/hooks/rejects']) {
      const res = await httpRequest(port, { method: 'POST', path, body: '{}' });
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ error: 'internal_error', message: 'the request could not be handled' });
    }
    expect(logs.withMessage('route handler failed').map((r) => r.err_message)).toEqual(['sync failure', 'async failure']);
    expect((await httpRequest(port, { path: '/healthz' })).status).toBe(200);
  });

  it('refuses to mount over its own routes, an existing mount, or a relative path', async () => {
    const { channel } = await startChannel();
    const handler = async () => ({ status: 200, body: {} });
    channel.mount('POST', '/hooks/a', handler);
    expect(() => channel.mount('POST', '/v1/messages', handler)).toThrow('route /v1/messages is already taken');
    expect(() => channel.mount('GET', '/healthz', handler)).toThrow('route /healthz is already taken');
    expect(() => channel.mount('POST', '/hooks/a', handler)).toThrow('route /hooks/a is already taken');
    expect(() => channel.mount('POST', 'hooks/b', handler)).toThrow('route path must start with "/"');
  });

  it('tells a handler when its client went away', async () => {
    const { channel, port } = await startChannel();
    let reached!: () => void;
    const handlerReached = new Promise<void>((resolve) => (reached = resolve));
    let aborted!: () => void;
    const clientGone = new Promise<void>((resolve) => (aborted = resolve));
    channel.mount('POST', '/hooks/slow', ({ signal }) => {
      signal.addEventListener('abort', () => aborted());
      reached();
      return new Promise(() => {}); // never answers
    });
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/hooks/slow', headers: { 'content-length': 2 }, agent: false });
    req.on('error', () => {}); // the test hangs up itself
    req.end('{}');
    await handlerReached;
    req.destroy();
    await clientGone;
  });
});
