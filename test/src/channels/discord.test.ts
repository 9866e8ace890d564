import { resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { DiscordChannel } from '../../../src/channels/discord.ts';
import { HttpChannel } from '../../../src/channels/http.ts';
import { TIMEOUT_REPLY } from '../../../src/channels/reply-timeout.ts';
import { ManualClock } from '../../../src/clock.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { GatewayConfigSchema } from '../../../src/config/schema.ts';
import { Gateway } from '../../../src/gateway.ts';
import {
  DISCORD_CHANNEL_ID,
  DISCORD_DM_USER_ID,
  DISCORD_FLOODER_ID,
  DISCORD_GUILD_ID,
  discordSigner,
  fixture,
  type DiscordSigner,
  type Payload,
} from '../../support/platforms.ts';
import { aborted, fakeAgent, held, type Replier } from '../support/agent.ts';
import { httpRequest, type HttpResult } from '../support/http-client.ts';
import { captureLogs } from '../support/logs.ts';

const NOW = Date.UTC(2025, 0, 1, 12);
const PATH = '/discord/interactions';
const RATE_LIMITER = resolve(import.meta.dirname, '../../../plugins/rate-limiter/index.ts');
const NO_MENTIONS = { parse: [] };

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

interface PostOptions {
  /** Unix seconds of the signature (default: the test clock's now). */
  timestamp?: number;
  /** Headers instead of a valid signature. */
  headers?: Record<string, string>;
  /** Signs this text but sends `body`. */
  signed?: string;
}

type Post = (body: unknown, options?: PostOptions) => Promise<HttpResult>;

function poster(port: number, signer: DiscordSigner, clock: ManualClock): Post {
  return (body, options = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const signature = options.headers ?? signer.headers(options.signed ?? text, options.timestamp ?? Math.floor(clock.now() / 1000));
    return httpRequest(port, {
      method: 'POST',
      path: PATH,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...signature },
      body: text,
    });
  };
}

/** An HttpChannel with a DiscordChannel mounted on it, whose agent answers each message as `replier` says. */
async function startDiscord(replier?: Replier, http: Record<string, unknown> = {}) {
  const agent = fakeAgent(replier);
  const logs = captureLogs();
  const clock = new ManualClock(NOW);
  const signer = discordSigner();
  const deps = (name: string) => ({ agent, clock, logger: logs.logger.child({ channel: name }) });
  const httpConfig = GatewayConfigSchema.parse({ channels: { http: { port: 0, reply_timeout_ms: 2_000, ...http } } }).channels.http;
  const server = new HttpChannel(deps('http'), httpConfig);
  const discord = new DiscordChannel(deps('discord'), { path: PATH, public_key: signer.publicKey }, server);
  await server.start();
  await discord.start();
  onTestFinished(() => server.stop());
  return { logs, clock, agent, received: agent.received, signals: agent.signals, signer, post: poster(server.port, signer, clock), port: server.port };
}

/** The raw text of a fixture, as stored (pretty-printed): the signature covers these exact bytes. */
function raw(name: string): string {
  return JSON.stringify(fixture('discord', name), null, 2);
}

describe('DiscordChannel: signatures', () => {
  it('answers a signed PING with PONG, publishing nothing', async () => {
    const { post, received } = await startDiscord(echo);
    const res = await post(raw('ping'));
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ type: 1 });
    expect(received).toHaveLength(0);
  });

  it.each<[string, (s: DiscordSigner, body: string) => Record<string, string>, string]>([
    ['no signature headers', () => ({}), 'missing request signature'],
    ['only a timestamp', () => ({ 'X-Signature-Timestamp': String(NOW / 1000) }), 'missing request signature'],
    ['a signature that is not hex', (s, b) => ({ ...s.headers(b, NOW / 1000), 'X-Signature-Ed25519': 'z'.repeat(128) }), 'malformed request signature'],
    ['a short signature', (s, b) => ({ ...s.headers(b, NOW / 1000), 'X-Signature-Ed25519': 'ab'.repeat(32) }), 'malformed request signature'],
    ['a timestamp that is no number', (s, b) => ({ ...s.headers(b, NOW / 1000), 'X-Signature-Timestamp': 'yesterday' }), 'malformed request signature'],
    ['a signature by another key', (_s, b) => discordSigner().headers(b, NOW / 1000), 'invalid request signature'],
    ['a signature of another timestamp', (s, b) => ({ ...s.headers(b, NOW / 1000 - 1), 'X-Signature-Timestamp': String(NOW / 1000) }), 'invalid request signature'],
  ])('refuses %s with 401', async (_label, headers, message) => {
    const { post, received, signer } = await startDiscord(echo);
    const body = raw('guild-command');
    const res = await post(body, { headers: headers(signer, body) });
    expect(res.status).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthorized', message });
    expect(received).toHaveLength(0);
  });

  it('refuses a body changed after signing with 401', async () => {
    const { post, received } = await startDiscord(echo);
    const original = raw('guild-command');
    const tampered = original.replace('token bucket', 'sliding window');
    expect(tampered).not.toBe(original);
    const res = await post(tampered, { signed: original });
    expect(res.status).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthorized', message: 'invalid request signature' });
    expect(received).toHaveLength(0);
  });

  it('refuses a signed request whose timestamp is more than 5 minutes from now, either way', async () => {
    const { post, received } = await startDiscord(echo);
    const body = raw('ping');
    const seconds = NOW / 1000;
    for (const timestamp of [seconds - 301, seconds + 301]) {
      const res = await post(body, { timestamp });
      expect(res.status).toBe(401);
      expect(res.json()).toEqual({ error: 'unauthorized', message: 'stale request signature' });
    }
    for (const timestamp of [seconds - 299, seconds + 299]) expect((await post(body, { timestamp })).status).toBe(200);
    expect(received).toHaveLength(0);
  });

  it('judges staleness by the injected clock', async () => {
    const { post, clock } = await startDiscord(echo);
    const body = raw('ping');
    const signedAt = NOW / 1000;
    clock.advance(299_000);
    expect((await post(body, { timestamp: signedAt })).status).toBe(200);
    clock.advance(2_000);
    expect((await post(body, { timestamp: signedAt })).status).toBe(401);
  });

  it('logs refused requests once per reason per 10 s', async () => {
    const { post, logs } = await startDiscord(echo);
    for (let i = 0; i < 4; i++) await post(raw('ping'), { headers: {} });
    for (let i = 0; i < 3; i++) await post(raw('ping'), { timestamp: NOW / 1000 - 3600 });
    expect(logs.withMessage('discord interaction refused: missing signature')).toHaveLength(1);
    expect(logs.withMessage('discord interaction refused: stale signature')).toHaveLength(1);
  });
});

describe('DiscordChannel: commands', () => {
  it('turns a guild command into a message from member.user.id, in channel_id, with the guild as tenant', async () => {
    const { post, received, signals } = await startDiscord(echo);
    const res = await post(raw('guild-command'));
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ type: 4, data: { content: 'echo: /search token bucket', allowed_mentions: NO_MENTIONS } });
    expect(received).toEqual([
      {
        id: expect.any(String),
        channel: 'discord',
        userId: DISCORD_FLOODER_ID,
        tenantId: DISCORD_GUILD_ID,
        conversationId: DISCORD_CHANNEL_ID,
        text: '/search token bucket',
        receivedAt: NOW,
      },
    ]);
    // The agent's signal aborts once the request is answered: what the agent holds for it is let go.
    expect(signals[0]).toBeInstanceOf(AbortSignal);
    await aborted(signals[0]);
  });

  it('turns a DM command into a message from user.id, with no tenant', async () => {
    const { post, received } = await startDiscord(echo);
    const res = await post(raw('dm-command'));
    expect(res.json()).toEqual({ type: 4, data: { content: 'echo: /time', allowed_mentions: NO_MENTIONS } });
    expect(received[0]).toMatchObject({ userId: DISCORD_DM_USER_ID, conversationId: '1300011122233344455', text: '/time' });
    expect(received[0]).not.toHaveProperty('tenantId');
  });

  it('takes the conversation from channel.id when channel_id is absent', async () => {
    const { post, received } = await startDiscord(echo);
    const interaction = fixture('discord', 'guild-command');
    delete interaction.channel_id;
    await post(interaction);
    expect(received[0]!.conversationId).toBe(DISCORD_CHANNEL_ID);
  });

  it.each<[string, Payload, string]>([
    ['a string, a number and a boolean', { name: 'echo', options: [{ name: 'a', type: 3, value: 'x' }, { name: 'b', type: 10, value: 2.5 }, { name: 'c', type: 5, value: false }] }, '/echo x 2.5 false'],
    ['a sub-command', { name: 'tag', options: [{ name: 'add', type: 1, options: [{ name: 'name', type: 3, value: 'greeting' }] }] }, '/tag add greeting'],
    ['a sub-command group', { name: 'admin', options: [{ name: 'tags', type: 2, options: [{ name: 'remove', type: 1, options: [{ name: 'name', type: 3, value: 'old' }] }] }] }, '/admin tags remove old'],
    ['a sub-command without options', { name: 'stats', options: [{ name: 'today', type: 1 }] }, '/stats today'],
  ])('reads options with %s as the typed command', async (_label, data, text) => {
    const { post, received } = await startDiscord(echo);
    const interaction = fixture('discord', 'guild-command');
    interaction.data = { id: '1327649802147328099', type: 1, ...data };
    expect((await post(interaction)).status).toBe(200);
    expect(received[0]!.text).toBe(text);
  });

  it('answers a refusal ephemerally, and a quiet refusal with an empty 204', async () => {
    let quiet = false;
    const { post } = await startDiscord((message) => {
      const refusal = reply(message, 'Please wait 12 seconds.', { kind: 'refused', status: 429, code: 'rate_limited', silent: quiet });
      quiet = true;
      return refusal;
    });
    const told = await post(raw('guild-command'));
    expect(told.status).toBe(200);
    expect(told.json()).toEqual({ type: 4, data: { content: 'Please wait 12 seconds.', allowed_mentions: NO_MENTIONS, flags: 64 } });
    const silent = await post(raw('guild-command'));
    expect(silent.status).toBe(204);
    expect(silent.text).toBe('');
  });

  it('answers an error ephemerally too', async () => {
    const { post } = await startDiscord((message) => reply(message, 'Something went wrong.', { kind: 'error', status: 500 }));
    expect((await post(raw('guild-command'))).json()).toMatchObject({ type: 4, data: { content: 'Something went wrong.', flags: 64 } });
  });

  it('apologises ephemerally when the agent has not answered in time, and stops the agent', async () => {
    const late = held<OutboundReply>();
    const { post, received, signals } = await startDiscord((message) => (received.length === 1 ? late.promise : echo(message)), {
      reply_timeout_ms: 30,
    });
    const res = await post(raw('guild-command'));
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ type: 4, data: { content: TIMEOUT_REPLY, allowed_mentions: NO_MENTIONS, flags: 64 } });
    expect(received).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);
    // The answer that comes after all is ignored; the endpoint keeps answering.
    late.resolve(reply(received[0]!, 'too late'));
    expect((await post(raw('guild-command'))).json()).toMatchObject({ data: { content: 'echo: /search token bucket' } });
  });

  it('apologises before Discord gives up (2.5 s), however long reply_timeout_ms is', async () => {
    const { post, signals } = await startDiscord(undefined, { reply_timeout_ms: 60_000 });
    const sent = Date.now();
    const res = await post(raw('guild-command'));
    const ms = Date.now() - sent;
    expect(res.json()).toMatchObject({ data: { content: TIMEOUT_REPLY, flags: 64 } });
    expect(ms).toBeGreaterThanOrEqual(2_490);
    expect(ms).toBeLessThan(3_000);
    expect(signals[0]!.aborted).toBe(true);
  });

  it('cuts content to Discord’s 2000 characters', async () => {
    const { post } = await startDiscord((message) => reply(message, 'y'.repeat(2500)));
    const { data } = (await post(raw('guild-command'))).json() as { data: { content: string } };
    expect(data.content).toHaveLength(2000);
    expect(data.content.endsWith('y…')).toBe(true);
  });

  it('answers autocomplete with no suggestions, publishing nothing', async () => {
    const { post, received } = await startDiscord(echo);
    const res = await post(raw('autocomplete'));
    expect(res.json()).toEqual({ type: 8, data: { choices: [] } });
    expect(received).toHaveLength(0);
  });
});

describe('DiscordChannel: malformed and oversized bodies', () => {
  const withType = (type: unknown) => ({ ...fixture('discord', 'guild-command'), type });
  const withOptionValue = (value: unknown) => {
    const interaction = fixture('discord', 'guild-command');
    interaction.data.options[0].value = value;
    return interaction;
  };

  it.each<[string, () => unknown, string]>([
    ['invalid JSON', () => raw('guild-command').slice(0, 80), 'body is not valid JSON'],
    ['a message component', () => fixture('discord', 'message-component'), 'type: interaction type 3 is not handled'],
    ['a modal submit', () => withType(5), 'type: interaction type 5 is not handled'],
    ['a type that is text', () => withType('2'), 'type: expected a whole number'],
    ['a command without data', () => fixture('discord', 'malformed-no-data'), 'data: required field is missing'],
    ['a command with no member and no user', () => fixture('discord', 'malformed-no-user'), 'member.user.id: required field is missing (user.id in a direct message)'],
    ['an option value that is an object', () => withOptionValue({ text: 'x' }), 'data.options[0].value: has the wrong shape'],
    ['a body that is a list', () => [fixture('discord', 'ping')], 'body: expected a JSON object'],
  ])('answers %s with 400 naming the problem', async (_label, body, problem) => {
    const { post, received } = await startDiscord(echo);
    const payload = body();
    const res = await post(typeof payload === 'string' ? payload : JSON.stringify(payload));
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: problem });
    expect(received).toHaveLength(0);
  });

  it.each<[string, (i: Payload) => void, string]>([
    ['a user id that is a number', (i) => (i.member.user.id = 802145398817163), 'member.user.id: expected a string'],
    ['a user id with letters', (i) => (i.member.user.id = 'x802145398817163264'), 'member.user.id: expected a Discord id (a string of digits)'],
    ['a guild id that is too long', (i) => (i.guild_id = '1298765432109876543'.repeat(2)), 'guild_id: expected a Discord id (a string of digits)'],
  ])('answers %s with 400 naming the field, never echoing the id', async (_label, change, problem) => {
    const { post, received } = await startDiscord(echo);
    const interaction = fixture('discord', 'guild-command');
    change(interaction);
    const res = await post(interaction);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: problem });
    expect(res.text).not.toMatch(/802145398817|129876543210/);
    expect(received).toHaveLength(0);
  });

  it('reads the recorded payload with a numeric snowflake as malformed, without echoing it', async () => {
    const { post } = await startDiscord(echo);
    const text = JSON.stringify(fixture('discord', 'malformed-user-id-number'));
    const res = await post(text);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message: 'member.user.id: expected a string' });
    expect(res.text).not.toContain('80214539881716');
  });

  it('answers an interaction over max_body_bytes with 413 and publishes nothing', async () => {
    const { post, received } = await startDiscord(echo, { max_body_bytes: 2048 });
    const interaction = fixture('discord', 'guild-command');
    interaction.data.options[0].value = 'z'.repeat(3000);
    const res = await post(interaction);
    expect(res.status).toBe(413);
    expect(received).toHaveLength(0);
  });
});

/** A gateway with the Discord endpoint and the real rate limiter, on a clock the test moves. */
async function startLimitedGateway(limiter: Record<string, unknown>) {
  const logs = captureLogs('info');
  const clock = new ManualClock(NOW);
  const signer = discordSigner();
  const loaded = parseConfig(
    JSON.stringify({
      channels: { http: { port: 0 }, discord: { enabled: true, public_key: signer.publicKey } },
      plugins: [{ name: 'rate_limiter', path: RATE_LIMITER, priority: 10, config: limiter }],
    }),
    '/virtual/config.json',
  );
  const gateway = await Gateway.start({ loaded, logger: logs.logger, clock });
  onTestFinished(() => gateway.stop());
  return { clock, logs, post: poster(gateway.http!.port, signer, clock) };
}

/** What each answer was: a reply, the (ephemeral) slow-down reply, or nothing posted (204). */
function classify(result: HttpResult): string {
  if (result.status === 204) return '204';
  const { data } = result.json() as { data: { content: string; flags?: number } };
  if (/too fast/.test(data.content)) return data.flags === 64 ? 'ephemeral slow-down' : 'PUBLIC slow-down';
  return data.flags === undefined ? 'answer' : 'ephemeral answer';
}

describe('DiscordChannel in a gateway with the rate limiter', () => {
  it('gives a flooder exactly one ephemeral slow-down per cooldown, and leaves other members alone', async () => {
    const { post, clock } = await startLimitedGateway({ by_user: '3/m', reply_cooldown: 10 });
    const flood = async (count: number) => {
      const kinds: string[] = [];
      for (let i = 0; i < count; i++) kinds.push(classify(await post(raw('guild-command'))));
      return kinds;
    };
    expect(await flood(10)).toEqual(['answer', 'answer', 'answer', 'ephemeral slow-down', ...Array(6).fill('204')]);
    const other = await post(raw('guild-command-second-user'));
    expect(other.json()).toEqual({ type: 4, data: { content: 'still here', allowed_mentions: NO_MENTIONS } });

    clock.advance(11_000);
    expect(await flood(3)).toEqual(['ephemeral slow-down', '204', '204']);
    clock.advance(60_000);
    expect(await flood(1)).toEqual(['answer']);
  });

  it('with by_tenant, limits a whole server together, but not DMs', async () => {
    // Each command here is a prompt and a tool call: two units of the server's 6.
    const { post } = await startLimitedGateway({ by_user: '10/m', by_tenant: '6/m' });
    for (let i = 0; i < 2; i++) expect(classify(await post(raw('guild-command')))).toBe('answer');
    expect(classify(await post(raw('guild-command-second-user')))).toBe('answer');
    // Another member, far below their own limit, is refused: the server has used its 6.
    expect(classify(await post(raw('guild-command-second-user')))).toBe('ephemeral slow-down');
    expect(classify(await post(raw('dm-command')))).toBe('answer');
  });
});
