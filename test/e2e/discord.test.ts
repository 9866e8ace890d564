import { afterEach, describe, expect, it } from 'vitest';
import {
  DISCORD_BYSTANDER_ID,
  DISCORD_DM_USER_ID,
  DISCORD_FLOODER_ID,
  DISCORD_GUILD_ID,
  discordSigner,
  fixture,
  type DiscordSigner,
} from '../support/platforms.ts';
import { postRaw, rateLimiterEntry, startGateway, type PostResult, type RunningGateway } from './support/gateway-process.ts';

const PATH = '/discord/interactions';
const NO_MENTIONS = { parse: [] };

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The real gateway process with the Discord endpoint on (for `signer`'s key) and the rate limiter at `by_user`. */
async function startDiscordGateway(signer: DiscordSigner, byUser = '3/m', http: Record<string, unknown> = {}) {
  gateway = await startGateway({
    channels: { http: { host: '127.0.0.1', port: 0, ...http }, discord: { enabled: true, public_key: signer.publicKey } },
    plugins: [rateLimiterEntry({ by_user: byUser })],
  });
  const running = gateway;
  /** Sends `body` signed now (or with the headers given). */
  const post = (body: unknown, headers?: Record<string, string>): Promise<PostResult> => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return postRaw(running.url, PATH, text, headers ?? signer.headers(text, nowSeconds()));
  };
  return { running, post };
}

describe('Discord interactions through the real gateway process', () => {
  it('answers a command flood with exactly one ephemeral slow-down per cooldown, per user, never naming the user', async () => {
    const { running, post } = await startDiscordGateway(discordSigner(), '3/m');
    const flood: PostResult[] = [];
    for (let i = 0; i < 10; i++) flood.push(await post(fixture('discord', 'guild-command')));

    for (const answer of flood.slice(0, 3)) {
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        type: 4,
        data: { content: expect.stringContaining('Token buckets: A token bucket refills'), allowed_mentions: NO_MENTIONS },
      });
    }
    expect(flood[3]!.status).toBe(200);
    expect(flood[3]!.body).toEqual({
      type: 4,
      data: {
        content: expect.stringMatching(/^You're sending messages a little too fast\. Please wait \d+ seconds? and try again\.$/),
        allowed_mentions: NO_MENTIONS,
        flags: 64,
      },
    });
    // The rest: an empty 204, so nothing is posted to the channel.
    expect(flood.slice(4).map((r) => [r.status, r.raw])).toEqual(Array(6).fill([204, '']));

    // Another member of the same server is not held by the flooder's limit.
    const bystander = await post(fixture('discord', 'guild-command-second-user'));
    expect(bystander.body).toEqual({ type: 4, data: { content: 'still here', allowed_mentions: NO_MENTIONS } });

    await running.stop();
    const logText = running.stdout.join('\n');
    expect(logText).toContain('rate limit exceeded');
    for (const text of [...flood.map((r) => r.raw), bystander.raw, logText, running.stderr.join('\n')]) {
      expect(text).not.toContain(DISCORD_FLOODER_ID);
      expect(text).not.toContain(DISCORD_BYSTANDER_ID);
      expect(text).not.toContain(DISCORD_GUILD_ID);
    }
  });

  it('answers PING with PONG and a DM command through the agent', async () => {
    const { running, post } = await startDiscordGateway(discordSigner(), '30/m');
    const ping = await post(fixture('discord', 'ping'));
    expect(ping.status).toBe(200);
    expect(ping.body).toEqual({ type: 1 });
    const dm = await post(fixture('discord', 'dm-command'));
    expect(dm.status).toBe(200);
    expect(dm.body).toEqual({ type: 4, data: { content: expect.stringMatching(/^It is \d{4}-\d\d-\d\dT/), allowed_mentions: NO_MENTIONS } });
    await running.stop();
    expect(running.stdout.join('\n')).not.toContain(DISCORD_DM_USER_ID);
  });

  it('refuses unsigned, badly signed, tampered and stale requests with 401', async () => {
    const signer = discordSigner();
    const { post } = await startDiscordGateway(signer);
    const body = JSON.stringify(fixture('discord', 'guild-command'));
    const now = nowSeconds();
    const cases: [string, string, Record<string, string>, string][] = [
      ['no signature', body, {}, 'missing request signature'],
      ['a garbled signature', body, { ...signer.headers(body, now), 'X-Signature-Ed25519': 'not-hex' }, 'malformed request signature'],
      ['another key’s signature', body, discordSigner().headers(body, now), 'invalid request signature'],
      ['a tampered body', body.replace('token bucket', 'free lunch'), signer.headers(body, now), 'invalid request signature'],
      ['a stale timestamp', body, signer.headers(body, now - 600), 'stale request signature'],
    ];
    for (const [label, sent, headers, message] of cases) {
      const res = await post(sent, headers);
      expect([label, res.status, res.body]).toEqual([label, 401, { error: 'unauthorized', message }]);
    }
    // A correctly signed request still gets through afterwards.
    expect((await post(body)).status).toBe(200);
  });

  it('answers malformed interactions with 400 and oversized ones with 413, never echoing an id, and keeps running', async () => {
    const { running, post } = await startDiscordGateway(discordSigner(), '30/m', { max_body_bytes: 8192 });
    const cases: [unknown, string][] = [
      [JSON.stringify(fixture('discord', 'guild-command')).slice(0, 100), 'body is not valid JSON'],
      [fixture('discord', 'malformed-no-user'), 'member.user.id: required field is missing (user.id in a direct message)'],
      [JSON.stringify(fixture('discord', 'malformed-user-id-number')), 'member.user.id: expected a string'],
      [fixture('discord', 'malformed-no-data'), 'data: required field is missing'],
      [fixture('discord', 'message-component'), 'type: interaction type 3 is not handled'],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      expect([message, res.status]).toEqual([message, 400]);
      expect(res.body).toEqual({ error: 'bad_request', message });
      expect(res.raw).not.toMatch(/80214539881716|1298765432109876/);
    }
    const big = fixture('discord', 'guild-command');
    big.data.options[0].value = 'z'.repeat(10_000);
    const tooLarge = await post(big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body).toEqual({ error: 'payload_too_large', message: 'body exceeds 8192 bytes' });

    expect(running.process.exitCode).toBeNull();
    expect((await post(fixture('discord', 'ping'))).body).toEqual({ type: 1 });
  });
});
