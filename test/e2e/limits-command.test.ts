import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DISCORD_DM_USER_ID,
  TELEGRAM_FLOODER_ID,
  TELEGRAM_SECRET,
  TELEGRAM_SECRET_HEADER,
  discordSigner,
  fixture,
  telegramUpdate,
} from '../support/platforms.ts';
import {
  REPO_ROOT,
  postRaw,
  rateLimiterEntry,
  sendMessage,
  startGateway,
  writeConfig,
  type RunningGateway,
} from './support/gateway-process.ts';

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

const LIMITS = { by_user: { rate: '3/m', tokens: '5000/h' } };

describe('/limits on every channel of a real gateway process', () => {
  it('HTTP: tells the user what is left, and asking does not count', async () => {
    gateway = await startGateway({ channels: { http: { host: '127.0.0.1', port: 0 } }, plugins: [rateLimiterEntry(LIMITS)] });
    const user = { user_id: 'Dana@example.com', text: 'hello there' };
    expect((await sendMessage(gateway.url, user)).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      const asked = await sendMessage(gateway.url, { ...user, text: '/limits' });
      expect(asked.status).toBe(200);
      expect(asked.body.reply).toContain('Messages: 2 of 3 left per minute');
      expect(asked.body.reply).toMatch(/Tokens: [\d,]+ of 5,000 left per hour/);
      expect(asked.raw).not.toContain('Dana');
    }
    // Five questions later the user still has both messages of the minute left.
    expect((await sendMessage(gateway.url, user)).status).toBe(200);
    expect((await sendMessage(gateway.url, user)).status).toBe(200);
    expect((await sendMessage(gateway.url, user)).status).toBe(429);
    // Even when refused, the question is answered.
    const refused = await sendMessage(gateway.url, { ...user, text: '/limits' });
    expect(refused.status).toBe(200);
    expect(refused.body.reply).toMatch(/Messages: 0 of 3 left per minute, back to 3 in \d+ seconds?\./);
  });

  it('Telegram: answers /limits@bot in the group it was asked in', async () => {
    gateway = await startGateway({
      channels: { http: { host: '127.0.0.1', port: 0 }, telegram: { enabled: true, secret_token: TELEGRAM_SECRET } },
      plugins: [rateLimiterEntry(LIMITS)],
    });
    const update = telegramUpdate('supergroup-command');
    update.message.text = '/limits@FloodgateDemoBot';
    update.message.entities = [{ offset: 0, length: update.message.text.length, type: 'bot_command' }];
    const answer = await postRaw(gateway.url, '/telegram/webhook', JSON.stringify(update), { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ method: 'sendMessage', text: expect.stringContaining('Messages: 3 of 3 left per minute.') });
    expect(answer.raw).not.toContain(String(TELEGRAM_FLOODER_ID));
  });

  it('Discord: answers the limits slash command', async () => {
    const signer = discordSigner();
    gateway = await startGateway({
      channels: { http: { host: '127.0.0.1', port: 0 }, discord: { enabled: true, public_key: signer.publicKey } },
      plugins: [rateLimiterEntry(LIMITS)],
    });
    const interaction = fixture('discord', 'dm-command');
    interaction.data.name = 'limits';
    const text = JSON.stringify(interaction);
    const answer = await postRaw(gateway.url, '/discord/interactions', text, signer.headers(text, Math.floor(Date.now() / 1000)));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ type: 4, data: { content: expect.stringContaining('Messages: 3 of 3 left per minute.') } });
    expect(answer.raw).not.toContain(DISCORD_DM_USER_ID);
  });

  it('terminal: answers /limits between messages, and the flooder is still told to slow down', async () => {
    const path = writeConfig({ channels: { http: { port: 0 } }, plugins: [rateLimiterEntry({ by_user: '2/m' })] });
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli-chat.ts'), '--config', path], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end(['hello', '/limits', 'two', '/limits', 'three'].join('\n') + '\n');
    expect(await new Promise<number | null>((r) => child.once('exit', r))).toBe(0);
    const replies = output.split('\n').filter((l) => l.startsWith('bot> ') || l.startsWith('- '));
    expect(replies.some((l) => /^- Messages: 1 of 2 left per minute, back to 2 in \d+ seconds\.$/.test(l))).toBe(true);
    expect(replies.some((l) => /^- Messages: 0 of 2 left per minute, back to 2 in \d+ seconds\.$/.test(l))).toBe(true);
    expect(replies.filter((l) => /too fast/.test(l))).toHaveLength(1);
    // The status line after each answer: what is left, at a glance, costing nothing.
    const status = output.split('\n').filter((l) => l.startsWith('['));
    expect(status).toEqual([
      '[messages 1/2 per minute]',
      '[messages 1/2 per minute]',
      '[messages 0/2 per minute]',
      '[messages 0/2 per minute]',
      '[messages 0/2 per minute]',
    ]);
  });
});
