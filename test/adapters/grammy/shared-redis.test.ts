import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { floodgate, type FloodgateMiddleware } from '../../../plugins/rate-limiter/grammy/index.ts';
import { rateLimiterEntry, postRaw, startGateway, type PostResult, type RunningGateway } from '../../e2e/support/gateway-process.ts';
import {
  TELEGRAM_BYSTANDER_ID,
  TELEGRAM_FLOODER_ID,
  TELEGRAM_SECRET,
  TELEGRAM_SECRET_HEADER,
  TELEGRAM_SUPERGROUP_ID,
  telegramUpdate,
  type Payload,
} from '../../support/platforms.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { BotApiServer } from './support/bot-api.ts';
import { byPolling, capturedLogger, testBot, textUpdate, type TestContext, type Transport } from './support/bots.ts';

const SLOW_DOWN = /^You're sending messages a little too fast\. Please wait \d+ seconds? and try again\.$/;

/**
 * One user's messages split between a Floodgate gateway (its Telegram webhook) and a grammY bot (long
 * polling), both on one Redis with the same limiter options: they are limited as one.
 */
describe.runIf(redisTestsEnabled())('a grammY bot and a Floodgate gateway on one Redis', () => {
  const limits = { by_user: '4/m', backend: 'redis' } as const;
  let redis: RedisProcess;
  let gateway: RunningGateway;
  let api: BotApiServer;
  let transport: Transport;
  let limiter: FloodgateMiddleware<TestContext>;
  const { logger, lines } = capturedLogger();
  const seen: string[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    api = await BotApiServer.start();
    gateway = await startGateway({
      channels: { http: { host: '127.0.0.1', port: 0 }, telegram: { enabled: true, secret_token: TELEGRAM_SECRET } },
      plugins: [rateLimiterEntry({ ...limits, redis_url: redis.url })],
    });
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ ...limits, redis_url: redis.url }, { logger });
    bot.use(limiter);
    bot.on('message:text', async (ctx) => {
      seen.push(ctx.msg.text);
      await ctx.reply('served by the bot');
    });
    transport = await byPolling(bot, api);
  });

  afterAll(async () => {
    await transport?.stop();
    await limiter?.close();
    await gateway?.stop();
    await api?.stop();
    await redis?.stop();
  });

  const toGateway = (update: Payload): Promise<PostResult> =>
    postRaw(gateway.url, '/telegram/webhook', JSON.stringify(update), { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET });

  it('shares one limit for one user: the four messages a minute go wherever they land, and both refuse the rest', async () => {
    const answers: (string | undefined)[] = [];
    const gatewayAnswer = async (n: number) => {
      const answer = await toGateway(textUpdate(`message ${n}`, n));
      expect(answer.status).toBe(200);
      answers.push((answer.body as { text?: string }).text);
    };
    const botAnswer = async (n: number) => {
      const before = api.sent.length;
      await transport.deliver(textUpdate(`message ${n}`, n));
      answers.push(api.sent.slice(before).map((m) => m.text as string)[0]);
    };

    // Alternating: 1 gateway, 2 bot, 3 gateway, 4 bot: four in all, two each.
    await gatewayAnswer(1);
    await botAnswer(2);
    await gatewayAnswer(3);
    await botAnswer(4);
    // The fifth is over the shared limit wherever it goes; each side tells the user once per cooldown.
    await gatewayAnswer(5);
    await botAnswer(6);
    await botAnswer(7);
    await gatewayAnswer(8);

    expect(answers).toEqual([
      expect.stringContaining('You said: message 1'),
      'served by the bot',
      expect.stringContaining('You said: message 3'),
      'served by the bot',
      expect.stringMatching(SLOW_DOWN),
      expect.stringMatching(SLOW_DOWN),
      undefined,
      undefined,
    ]);
    expect(seen).toEqual(['message 2', 'message 4']);

    // Another member of the group is served on both.
    const bystander = telegramUpdate('supergroup-text-second-user', 50);
    const onGateway = await toGateway(bystander);
    expect(onGateway.body).toMatchObject({ chat_id: TELEGRAM_SUPERGROUP_ID, text: expect.stringContaining('You said: is the bot still answering?') });
    await transport.deliver(telegramUpdate('supergroup-text-second-user', 51));
    expect(api.sent.at(-1)).toMatchObject({ chat_id: TELEGRAM_SUPERGROUP_ID, text: 'served by the bot' });

    // One key for the flooder on Redis: the gateway's Telegram user and the bot's are the same key.
    const keys = spawnSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', `*${TELEGRAM_FLOODER_ID}*`], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    expect(keys).toEqual([expect.stringMatching(new RegExp(`^fg:\\{telegram:${TELEGRAM_FLOODER_ID}\\}u:`))]);

    await gateway.stop();
    for (const text of [...lines, ...gateway.stdout, ...gateway.stderr, ...answers.map(String)]) {
      expect(text).not.toContain(String(TELEGRAM_FLOODER_ID));
      expect(text).not.toContain(String(TELEGRAM_BYSTANDER_ID));
    }
  });
});
