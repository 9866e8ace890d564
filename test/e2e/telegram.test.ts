import { afterEach, describe, expect, it } from 'vitest';
import {
  TELEGRAM_BYSTANDER_ID,
  TELEGRAM_FLOODER_ID,
  TELEGRAM_SECRET,
  TELEGRAM_SECRET_HEADER,
  TELEGRAM_SUPERGROUP_ID,
  fixture,
  telegramUpdate,
} from '../support/platforms.ts';
import {
  postRaw,
  rateLimiterEntry,
  spawnGateway,
  startGateway,
  writeConfig,
  type PostResult,
  type RunningGateway,
} from './support/gateway-process.ts';

const PATH = '/telegram/webhook';
const SECRET = { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET };

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

/** The real gateway process with the Telegram webhook on and the rate limiter at `by_user`. */
async function startTelegramGateway(byUser = '3/m', http: Record<string, unknown> = {}): Promise<RunningGateway> {
  gateway = await startGateway({
    channels: { http: { host: '127.0.0.1', port: 0, ...http }, telegram: { enabled: true, secret_token: TELEGRAM_SECRET } },
    plugins: [rateLimiterEntry({ by_user: byUser })],
  });
  return gateway;
}

function post(running: RunningGateway, body: unknown, headers: Record<string, string> = SECRET): Promise<PostResult> {
  return postRaw(running.url, PATH, typeof body === 'string' ? body : JSON.stringify(body), headers);
}

describe('Telegram webhook through the real gateway process', () => {
  it('answers a flood with exactly one slow-down reply per cooldown, per user, never naming the user', async () => {
    const running = await startTelegramGateway('3/m');
    const flood: PostResult[] = [];
    for (let i = 0; i < 10; i++) flood.push(await post(running, telegramUpdate('supergroup-command', i)));

    expect(flood.map((r) => r.status)).toEqual(Array(10).fill(200));
    for (const [i, answer] of flood.slice(0, 3).entries()) {
      expect(answer.body).toEqual({
        method: 'sendMessage',
        chat_id: TELEGRAM_SUPERGROUP_ID,
        text: expect.stringContaining('Token buckets: A token bucket refills'),
        reply_to_message_id: 3377 + i,
      });
    }
    expect(flood[3]!.body).toEqual({
      method: 'sendMessage',
      chat_id: TELEGRAM_SUPERGROUP_ID,
      text: expect.stringMatching(/^You're sending messages a little too fast\. Please wait \d+ seconds? and try again\.$/),
      reply_to_message_id: 3380,
    });
    // The rest of the flood: nothing is sent to the group.
    expect(flood.slice(4).map((r) => r.body)).toEqual(Array(6).fill({}));

    // Another member of the same group is not held by the flooder's limit.
    const bystander = await post(running, telegramUpdate('supergroup-text-second-user'));
    expect(bystander.body).toEqual({
      method: 'sendMessage',
      chat_id: TELEGRAM_SUPERGROUP_ID,
      text: expect.stringContaining('You said: is the bot still answering?'),
      reply_to_message_id: 3378,
    });

    await running.stop();
    const logText = running.stdout.join('\n');
    expect(logText).toContain('rate limit exceeded');
    for (const text of [...flood.map((r) => r.raw), bystander.raw, logText, running.stderr.join('\n')]) {
      expect(text).not.toContain(String(TELEGRAM_FLOODER_ID));
      expect(text).not.toContain(String(TELEGRAM_BYSTANDER_ID));
    }
  });

  it('answers a private chat and a group through the agent, replying to each message', async () => {
    const running = await startTelegramGateway('30/m');
    const privateChat = await post(running, fixture('telegram', 'private-command'));
    expect(privateChat.status).toBe(200);
    expect(privateChat.body).toEqual({
      method: 'sendMessage',
      chat_id: 5820317446,
      text: expect.stringContaining('Sliding windows: A sliding window never admits'),
      reply_to_message_id: 1204,
    });
    const group = await post(running, fixture('telegram', 'group-text'));
    expect(group.body).toEqual({ method: 'sendMessage', chat_id: -4102938475, text: 'hello group', reply_to_message_id: 88 });
  });

  it('refuses requests without the right secret token with 401, and ignores update kinds it does not handle', async () => {
    const running = await startTelegramGateway();
    for (const headers of [{}, { [TELEGRAM_SECRET_HEADER]: 'wrong-secret' }] as Record<string, string>[]) {
      const refused = await post(running, fixture('telegram', 'private-command'), headers);
      expect(refused.status).toBe(401);
      expect(refused.body).toEqual({ error: 'unauthorized', message: 'missing or wrong X-Telegram-Bot-Api-Secret-Token' });
    }
    for (const name of ['edited-message', 'callback-query', 'sticker-message', 'channel-post']) {
      const ignored = await post(running, fixture('telegram', name));
      expect([name, ignored.status, ignored.body]).toEqual([name, 200, {}]);
    }
    await running.stop();
    expect(running.stdout.join('\n')).not.toContain('wrong-secret');
    expect(running.stdout.join('\n')).not.toContain(TELEGRAM_SECRET);
  });

  it('answers malformed updates with 400 and oversized ones with 413, never echoing an id, and keeps running', async () => {
    const running = await startTelegramGateway('30/m', { max_body_bytes: 4096 });
    const cases: [unknown, string][] = [
      [JSON.stringify(fixture('telegram', 'supergroup-command')).slice(0, 90), 'body is not valid JSON'],
      [fixture('telegram', 'malformed-chat-id-string'), 'message.chat.id: expected a whole number'],
      [fixture('telegram', 'malformed-from-id-fraction'), 'message.from.id: expected a whole number'],
      [fixture('telegram', 'malformed-no-update-id'), 'update_id: required field is missing'],
    ];
    for (const [body, message] of cases) {
      const res = await post(running, body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'bad_request', message });
      expect(res.raw).not.toMatch(/7310598823|1001938475620/);
    }
    const big = fixture('telegram', 'supergroup-command');
    big.message.text = 'flood '.repeat(1000);
    const tooLarge = await post(running, big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body).toEqual({ error: 'payload_too_large', message: 'body exceeds 4096 bytes' });

    expect(running.process.exitCode).toBeNull();
    expect((await post(running, fixture('telegram', 'private-command'))).status).toBe(200);
  });

  it('refuses to start when a chat channel is on without the HTTP channel or its secret, naming the fields', async () => {
    const path = writeConfig({
      channels: { http: { enabled: false }, telegram: { enabled: true }, discord: { enabled: true, public_key: 'abc' } },
    });
    const { stderr, exited } = spawnGateway(path);
    expect(await exited).toBe(78);
    const text = stderr.join('\n');
    expect(text).toContain('FG_ERR_CONFIG');
    expect(text).toContain('channels.telegram.enabled: needs channels.http.enabled to be true');
    expect(text).toContain('channels.telegram.secret_token: required when channels.telegram.enabled is true');
    expect(text).toContain('channels.discord.enabled: needs channels.http.enabled to be true');
    expect(text).toContain("channels.discord.public_key: must be the 64 hexadecimal characters of the application's public key");
  });
});
