import { request } from 'node:http';
import { resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { HttpChannel } from '../../../src/channels/http.ts';
import { TIMEOUT_REPLY } from '../../../src/channels/reply-timeout.ts';
import { TelegramChannel } from '../../../src/channels/telegram.ts';
import { withoutBotName } from '../../../src/channels/telegram-wire.ts';
import { ManualClock } from '../../../src/clock.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { GatewayConfigSchema } from '../../../src/config/schema.ts';
import { Gateway } from '../../../src/gateway.ts';
import {
  TELEGRAM_BYSTANDER_ID,
  TELEGRAM_FLOODER_ID,
  TELEGRAM_SECRET,
  TELEGRAM_SECRET_HEADER,
  TELEGRAM_SUPERGROUP_ID,
  fixture,
  telegramUpdate,
  type Payload,
} from '../../support/platforms.ts';
import { aborted, fakeAgent, held, type Replier } from '../support/agent.ts';
import { httpRequest, type HttpResult } from '../support/http-client.ts';
import { captureLogs, type CapturedLogs } from '../support/logs.ts';

const NOW = Date.UTC(2025, 0, 1, 12);
const PATH = '/telegram/webhook';
const RATE_LIMITER = resolve(import.meta.dirname, '../../../plugins/rate-limiter/index.ts');

function reply(message: InboundMessage, text: string, fields: Partial<OutboundReply> = {}): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: 'answer',
    status: 200,
    text,
    headers: {},
    silent: false,
    ...fields,
  };
}

const echo: Replier = (message) => reply(message, `echo: ${message.text}`);

type Post = (body: unknown, headers?: Record<string, string>) => Promise<HttpResult>;

function poster(port: number): Post {
  return (body, headers = { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET }) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return httpRequest(port, {
      method: 'POST',
      path: PATH,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers },
      body: text,
    });
  };
}

/** An HttpChannel with a TelegramChannel mounted on it, whose agent answers each message as `replier` says. */
async function startTelegram(replier?: Replier, http: Record<string, unknown> = {}) {
  const agent = fakeAgent(replier);
  const logs = captureLogs();
  const clock = new ManualClock(NOW);
  const deps = (name: string) => ({ agent, clock, logger: logs.logger.child({ channel: name }) });
  const httpConfig = GatewayConfigSchema.parse({ channels: { http: { port: 0, reply_timeout_ms: 5_000, ...http } } }).channels.http;
  const server = new HttpChannel(deps('http'), httpConfig);
  const telegram = new TelegramChannel(deps('telegram'), { path: PATH, secret_token: TELEGRAM_SECRET }, server);
  await server.start();
  await telegram.start();
  onTestFinished(() => server.stop());
  return { logs, agent, received: agent.received, signals: agent.signals, post: poster(server.port), port: server.port };
}

describe('TelegramChannel: messages', () => {
  it('answers a private-chat command with a sendMessage call replying to that message', async () => {
    const { post, received, signals } = await startTelegram(echo);
    const res = await post(fixture('telegram', 'private-command'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.json()).toEqual({
      method: 'sendMessage',
      chat_id: 5820317446,
      text: 'echo: /search sliding window',
      reply_to_message_id: 1204,
    });
    expect(received).toEqual([
      {
        id: expect.any(String),
        channel: 'telegram',
        userId: '5820317446',
        conversationId: '5820317446',
        text: '/search sliding window',
        receivedAt: NOW,
      },
    ]);
    // The agent's signal aborts once the request is answered: what the agent holds for it is let go.
    expect(signals[0]).toBeInstanceOf(AbortSignal);
    await aborted(signals[0]);
  });

  it('in a group, counts the sender (from.id) in the group conversation (chat.id), without the @botname suffix', async () => {
    const { post, received } = await startTelegram(echo);
    const res = await post(fixture('telegram', 'supergroup-command'));
    expect(res.json()).toEqual({
      method: 'sendMessage',
      chat_id: TELEGRAM_SUPERGROUP_ID,
      text: 'echo: /search token bucket',
      reply_to_message_id: 3377,
    });
    expect(received[0]).toMatchObject({
      userId: String(TELEGRAM_FLOODER_ID),
      conversationId: String(TELEGRAM_SUPERGROUP_ID),
      text: '/search token bucket',
    });
    expect(received[0]).not.toHaveProperty('tenantId');

    const basic = await post(fixture('telegram', 'group-text'));
    expect(basic.json()).toMatchObject({ chat_id: -4102938475, text: 'echo: /echo hello group', reply_to_message_id: 88 });
    expect(received[1]).toMatchObject({ userId: String(TELEGRAM_BYSTANDER_ID), conversationId: '-4102938475' });
  });

  it.each([
    ['/search@FloodgateDemoBot cats', '/search cats'],
    ['/time@FloodgateDemoBot', '/time'],
    ['/echo@Some_bot  two  spaces', '/echo  two  spaces'],
    ['/search cats@home', '/search cats@home'],
    ['mail me@example.com', 'mail me@example.com'],
    ['hello @FloodgateDemoBot', 'hello @FloodgateDemoBot'],
  ])('reads %j as %j', (text, expected) => {
    expect(withoutBotName(text)).toBe(expected);
  });

  it('posts a refusal as a reply, and sends nothing for a quiet refusal (already told this cooldown)', async () => {
    let quiet = false;
    const { post } = await startTelegram((message) => {
      const refusal = reply(message, 'Please wait 12 seconds.', { kind: 'refused', status: 429, code: 'rate_limited', silent: quiet });
      quiet = true;
      return refusal;
    });
    const told = await post(telegramUpdate('supergroup-command', 0));
    expect(told.status).toBe(200);
    expect(told.json()).toEqual({
      method: 'sendMessage',
      chat_id: TELEGRAM_SUPERGROUP_ID,
      text: 'Please wait 12 seconds.',
      reply_to_message_id: 3377,
    });
    const silent = await post(telegramUpdate('supergroup-command', 1));
    expect(silent.status).toBe(200);
    expect(silent.json()).toEqual({});
  });

  it('apologises in a reply when the agent has not answered within reply_timeout_ms, and stops the agent', async () => {
    const late = held<OutboundReply>();
    const { post, received, signals } = await startTelegram((message) => (received.length === 1 ? late.promise : echo(message)), {
      reply_timeout_ms: 30,
    });
    const res = await post(fixture('telegram', 'private-command'));
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ method: 'sendMessage', chat_id: 5820317446, text: TIMEOUT_REPLY, reply_to_message_id: 1204 });
    expect(received).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);
    // The answer that comes after all is ignored; the webhook keeps answering.
    late.resolve(reply(received[0]!, 'too late'));
    expect((await post(fixture('telegram', 'private-command'))).json()).toMatchObject({ text: 'echo: /search sliding window' });
  });

  it('stops waiting when Telegram hangs up, and aborts the agent\'s signal', async () => {
    const { agent, signals, port } = await startTelegram(undefined, { reply_timeout_ms: 60_000 });
    const asked = agent.next();
    const body = JSON.stringify(fixture('telegram', 'private-command'));
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: PATH,
      headers: { 'content-length': Buffer.byteLength(body), [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET },
      agent: false,
    });
    req.on('error', () => {}); // the test hangs up itself
    req.end(body);
    await asked;
    expect(signals[0]!.aborted).toBe(false);
    req.destroy();
    await aborted(signals[0]);
  });

  it('cuts a reply to Telegram’s 4096 characters', async () => {
    const { post } = await startTelegram((message) => reply(message, 'x'.repeat(5000)));
    const { text } = (await post(fixture('telegram', 'private-command'))).json() as { text: string };
    expect(text).toHaveLength(4096);
    expect(text.endsWith('x…')).toBe(true);
  });
});

describe('TelegramChannel: stop', () => {
  it('lets an update already in flight get its reply when the HTTP channel stops', async () => {
    const later = held<OutboundReply>();
    const agent = fakeAgent(() => later.promise);
    const deps = (name: string) => ({ agent, clock: new ManualClock(NOW), logger: captureLogs().logger.child({ channel: name }) });
    const server = new HttpChannel(deps('http'), GatewayConfigSchema.parse({ channels: { http: { port: 0 } } }).channels.http);
    const telegram = new TelegramChannel(deps('telegram'), { path: PATH, secret_token: TELEGRAM_SECRET }, server);
    await server.start();
    const inFlight = agent.next();
    const response = poster(server.port)(fixture('telegram', 'private-command'));
    const pending = await inFlight;
    const stopped = Promise.all([server.stop(), telegram.stop()]);
    later.resolve(reply(pending, 'finished'));
    expect((await response).json()).toMatchObject({ method: 'sendMessage', text: 'finished', reply_to_message_id: 1204 });
    await stopped;
  });
});

describe('TelegramChannel: the secret token', () => {
  it.each<[string, Record<string, string>]>([
    ['no secret header', {}],
    ['a wrong secret', { [TELEGRAM_SECRET_HEADER]: 'not-the-secret' }],
    ['the secret in other case', { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET.toUpperCase() }],
    ['a prefix of the secret', { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET.slice(0, -1) }],
    ['the secret with a suffix', { [TELEGRAM_SECRET_HEADER]: `${TELEGRAM_SECRET}x` }],
  ])('refuses %s with 401 and publishes nothing', async (_label, headers) => {
    const { post, received } = await startTelegram(echo);
    const res = await post(fixture('telegram', 'private-command'), headers);
    expect(res.status).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthorized', message: 'missing or wrong X-Telegram-Bot-Api-Secret-Token' });
    expect(received).toHaveLength(0);
  });

  it('logs refused requests once per 10 s, never with the token sent or the real one', async () => {
    const { post, logs } = await startTelegram(echo);
    for (let i = 0; i < 5; i++) {
      expect((await post(fixture('telegram', 'private-command'), { [TELEGRAM_SECRET_HEADER]: `guess-${i}-zq` })).status).toBe(401);
    }
    expect(logs.withMessage('telegram webhook refused a request: missing or wrong secret token')).toHaveLength(1);
    const logText = JSON.stringify(logs.records());
    expect(logText).not.toContain('zq');
    expect(logText).not.toContain(TELEGRAM_SECRET);
  });
});

describe('TelegramChannel: updates it does not handle', () => {
  it.each(['edited-message', 'callback-query', 'sticker-message', 'channel-post'])(
    'answers %s with 200 {} and publishes nothing',
    async (name) => {
      const { post, received } = await startTelegram(echo);
      const res = await post(fixture('telegram', name));
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({});
      expect(received).toHaveLength(0);
    },
  );

  it('ignores a message without a sender, and one whose text is blank', async () => {
    const { post, received } = await startTelegram(echo);
    const anonymous = fixture('telegram', 'supergroup-command');
    delete anonymous.message.from;
    expect((await post(anonymous)).json()).toEqual({});
    const blank = fixture('telegram', 'supergroup-command');
    blank.message.text = '   ';
    expect((await post(blank)).json()).toEqual({});
    expect(received).toHaveLength(0);
  });
});

describe('TelegramChannel: malformed and oversized bodies', () => {
  it.each<[string, () => unknown, string, string[]]>([
    ['truncated JSON', () => JSON.stringify(fixture('telegram', 'private-command')).slice(0, 60), 'body is not valid JSON', []],
    ['an empty body', () => '', 'body is not valid JSON', []],
    ['a chat id that is a string', () => fixture('telegram', 'malformed-chat-id-string'), 'message.chat.id: expected a whole number', ['1001938475620']],
    ['a sender id with a fraction', () => fixture('telegram', 'malformed-from-id-fraction'), 'message.from.id: expected a whole number', ['7310598823']],
    ['no update_id', () => fixture('telegram', 'malformed-no-update-id'), 'update_id: required field is missing', []],
    ['an array', () => [fixture('telegram', 'private-command')], 'body: expected a JSON object', []],
    ['a message that is text', () => ({ update_id: 1, message: 'hello' }), 'message: expected a JSON object', []],
    ['a text that is a number', () => ({ ...telegramUpdate('private-command'), message: { ...telegramUpdate('private-command').message, text: 42 } }), 'message.text: expected a string', []],
  ])('answers %s with 400 naming the field, never echoing an id', async (_label, body, problem, ids) => {
    const { post, received } = await startTelegram(echo);
    const res = await post(body());
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: problem });
    for (const id of ids) expect(res.text).not.toContain(id);
    expect(received).toHaveLength(0);
  });

  it('answers an id beyond 2^53 with 400 rather than a reply to a rounded id', async () => {
    const { post, received } = await startTelegram(echo);
    const text = JSON.stringify(fixture('telegram', 'private-command')).replace('"message_id":1204', '"message_id":90071992547409930');
    const res = await post(text);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'message.message_id: is out of range' });
    expect(received).toHaveLength(0);
  });

  it('answers an update over max_body_bytes with 413 and publishes nothing', async () => {
    const { post, received } = await startTelegram(echo, { max_body_bytes: 1024 });
    const update = fixture('telegram', 'private-command');
    update.message.text = 'flood '.repeat(400);
    const res = await post(update);
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({ error: 'payload_too_large', message: 'body exceeds 1024 bytes' });
    expect(received).toHaveLength(0);
  });

  it('answers GET on the webhook path with 405, allowing POST', async () => {
    const { port } = await startTelegram(echo);
    const res = await httpRequest(port, { path: PATH });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
  });
});

/** A gateway with the Telegram webhook and the real rate limiter, on a clock the test moves. */
async function startLimitedGateway(limiter: Record<string, unknown>) {
  const logs = captureLogs('info');
  const clock = new ManualClock(NOW);
  const loaded = parseConfig(
    JSON.stringify({
      channels: { http: { port: 0 }, telegram: { enabled: true, secret_token: TELEGRAM_SECRET } },
      plugins: [{ name: 'rate_limiter', path: RATE_LIMITER, priority: 10, config: limiter }],
    }),
    '/virtual/config.json',
  );
  const gateway = await Gateway.start({ loaded, logger: logs.logger, clock });
  onTestFinished(() => gateway.stop());
  return { gateway, clock, logs, post: poster(gateway.http!.port) };
}

/** What each answer was: a reply ("answer"), the slow-down reply ("slow-down") or nothing sent ("{}"). */
function classify(result: HttpResult): string {
  const body = result.json() as Payload;
  if (Object.keys(body).length === 0) return '{}';
  return /too fast/.test(body.text as string) ? 'slow-down' : 'answer';
}

describe('TelegramChannel in a gateway with the rate limiter', () => {
  it('gives a flooder exactly one slow-down reply per cooldown, and leaves others in the group alone', async () => {
    const { post, clock, logs } = await startLimitedGateway({ by_user: '3/m', reply_cooldown: 10 });
    const flood = async (from: number, count: number) => {
      const kinds: string[] = [];
      for (let i = 0; i < count; i++) kinds.push(classify(await post(telegramUpdate('supergroup-command', from + i))));
      return kinds;
    };
    expect(await flood(0, 10)).toEqual(['answer', 'answer', 'answer', 'slow-down', ...Array(6).fill('{}')]);

    // Still within the cooldown: nothing is sent.
    expect((await post(telegramUpdate('supergroup-command', 100))).json()).toEqual({});

    const bystander = await post(telegramUpdate('supergroup-text-second-user'));
    expect(bystander.json()).toMatchObject({ method: 'sendMessage', chat_id: TELEGRAM_SUPERGROUP_ID, reply_to_message_id: 3378 });
    expect(classify(bystander)).toBe('answer');

    // The cooldown is over but the window is not: told once more, then quiet again.
    clock.advance(11_000);
    const again = await flood(200, 3);
    expect(again).toEqual(['slow-down', '{}', '{}']);

    // The window has slid past: admitted again.
    clock.advance(60_000);
    expect(await flood(300, 1)).toEqual(['answer']);
    expect(logs.records().map((r) => JSON.stringify(r)).join('\n')).not.toContain(String(TELEGRAM_FLOODER_ID));
  });

  it('replies to the slow-down message itself, with the friendly text', async () => {
    const { post } = await startLimitedGateway({ by_user: '1/m' });
    await post(telegramUpdate('supergroup-command', 0));
    const refused = (await post(telegramUpdate('supergroup-command', 1))).json();
    expect(refused).toEqual({
      method: 'sendMessage',
      chat_id: TELEGRAM_SUPERGROUP_ID,
      text: expect.stringMatching(/^You're sending messages a little too fast\. Please wait \d+ seconds? and try again\.$/),
      reply_to_message_id: 3378,
    });
  });
});
