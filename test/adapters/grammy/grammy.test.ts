import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { floodgate, type FloodgateMiddleware } from '../../../plugins/rate-limiter/grammy/index.ts';
import { systemClock } from '../../../src/plugin-sdk.ts';
import {
  TELEGRAM_BYSTANDER_ID,
  TELEGRAM_FLOODER_ID,
  TELEGRAM_SUPERGROUP_ID,
  telegramUpdate,
} from '../../support/platforms.ts';
import { BotApiServer } from './support/bot-api.ts';
import { TRANSPORTS, capturedLogger, commandUpdate, testBot, textUpdate, type TestContext, type Transport } from './support/bots.ts';

const SLOW_DOWN = /^You're sending messages a little too fast\. Please wait \d+ seconds? and try again\.$/;
/** The private-chat fixture's user (private-command.json): in a private chat, chat.id is the user's id. */
const PRIVATE_USER_ID = 5820317446;
const IDS = [TELEGRAM_FLOODER_ID, TELEGRAM_BYSTANDER_ID, PRIVATE_USER_ID].map(String);

let api: BotApiServer;
let transport: Transport | undefined;
let limiter: FloodgateMiddleware<TestContext> | undefined;

beforeAll(async () => {
  api = await BotApiServer.start();
});
afterAll(async () => {
  await api.stop();
});
afterEach(async () => {
  await transport?.stop();
  await limiter?.close();
  transport = undefined;
  limiter = undefined;
  api.reset();
});

/** Neither a reply the bot sent nor a log line names a user. */
function expectNoIds(texts: readonly string[]): void {
  for (const text of texts) for (const id of IDS) expect(text).not.toContain(id);
}

describe.each(TRANSPORTS)('floodgate() in a grammY bot, by $name', ({ start }) => {
  it('answers a flood with exactly one slow-down reply, keeps the refused updates from the handler, and serves others', async () => {
    const { logger, lines } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '3/m' }, { logger });
    bot.use(limiter);
    const seen: number[] = [];
    bot.on('message', async (ctx) => {
      seen.push(ctx.msg.message_id);
      await ctx.reply('served');
    });
    transport = await start(bot, api);

    const flood = Array.from({ length: 8 }, (_, i) => textUpdate(`hello ${i}`, i));
    await transport.deliver(...flood);
    const bystander = telegramUpdate('supergroup-text-second-user', 100);
    await transport.deliver(bystander);

    const ids = flood.map((u) => u.message.message_id as number);
    expect(seen).toEqual([...ids.slice(0, 3), bystander.message.message_id]);
    const sent = api.sent;
    expect(sent.map((m) => m.text)).toEqual(['served', 'served', 'served', expect.stringMatching(SLOW_DOWN), 'served']);
    // The one refusal that is answered is the first, as a reply to that message, in the group.
    expect(sent[3]).toMatchObject({ chat_id: TELEGRAM_SUPERGROUP_ID, reply_parameters: { message_id: ids[3] } });
    expect(transport.errors).toEqual([]);
    // The real thing on both sides: grammY asked the Bot API who it is, and polled it when polling.
    const methods = new Set(api.calls.map((c) => c.method));
    expect(methods.has('getMe')).toBe(true);
    expect(methods.has('getUpdates')).toBe(transport.name === 'long polling');

    expect(lines.join('\n')).toContain('rate limit exceeded; request refused');
    expectNoIds([...sent.map((m) => m.text as string), ...lines]);
  });

  it('refuses a command over its by_tool limit, then stays silent, and lets other messages of the user through', async () => {
    const { logger, lines } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '20/m', by_tool: { search: '2/m' } }, { logger });
    bot.use(limiter);
    const seen: string[] = [];
    bot.command('search', async (ctx) => {
      seen.push(`search ${ctx.match}`);
      await ctx.reply(`results for ${ctx.match}`);
    });
    bot.on('message:text', async (ctx) => {
      seen.push(ctx.msg.text);
      await ctx.reply('served');
    });
    transport = await start(bot, api);

    // The fixture's own command: "/search@FloodgateDemoBot token bucket", addressed to this bot.
    const searches = Array.from({ length: 5 }, (_, i) => telegramUpdate('supergroup-command', i));
    await transport.deliver(...searches);
    await transport.deliver(textUpdate('just chatting', 10), commandUpdate('echo', 'hi', 11), textUpdate('/search@SomeOtherBot cats', 12));

    expect(seen).toEqual(['search token bucket', 'search token bucket', 'just chatting', '/echo hi', '/search@SomeOtherBot cats']);
    const sent = api.sent;
    expect(sent.map((m) => m.text)).toEqual([
      'results for token bucket',
      'results for token bucket',
      expect.stringMatching(SLOW_DOWN),
      'served',
      'served',
      'served',
    ]);
    expect(sent[2]).toMatchObject({ chat_id: TELEGRAM_SUPERGROUP_ID, reply_parameters: { message_id: searches[2]!.message.message_id } });
    expect(lines.join('\n')).toContain('"hook":"preToolInvoke"');
    expectNoIds([...sent.map((m) => m.text as string), ...lines]);
  });

  it('charges the tokens a handler reports to the token budget, also when the handler fails', async () => {
    const { logger, lines } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: { tokens: '100/m' } }, { logger, estimateTokens: () => 10 });
    bot.use(limiter);
    const seen: string[] = [];
    bot.on('message:text', async (ctx) => {
      seen.push(ctx.msg.text);
      if (ctx.msg.text === 'expensive') ctx.floodgate.report(60);
      if (ctx.msg.text === 'cheap') ctx.floodgate.report(1);
      if (ctx.msg.text === 'fails') {
        ctx.floodgate.report(95);
        throw new Error('the model call failed');
      }
      await ctx.reply('served');
    });
    transport = await start(bot, api);

    // 10 reserved, 60 used; 10 more fit (70), 60 used (120): the third does not fit.
    await transport.deliver(textUpdate('expensive', 0), textUpdate('expensive', 1), textUpdate('expensive', 2));
    // Another user whose calls are cheap is never near the budget.
    const cheap = Array.from({ length: 5 }, (_, i) => {
      const update = telegramUpdate('supergroup-text-second-user', 10 + i);
      update.message.text = 'cheap';
      return update;
    });
    await transport.deliver(...cheap);
    // A failing handler still used what it reports: 95, so the next 10 do not fit.
    await transport.deliver(textUpdate('fails', 0, 'private-command'), textUpdate('expensive', 1, 'private-command'));

    expect(seen).toEqual(['expensive', 'expensive', ...Array(5).fill('cheap'), 'fails']);
    const sent = api.sent.map((m) => m.text as string);
    expect(sent).toEqual(['served', 'served', expect.stringMatching(SLOW_DOWN), ...Array(5).fill('served'), expect.stringMatching(SLOW_DOWN)]);
    // The handler's own error reaches the bot, as it would without the limiter.
    expect(transport.errors).toHaveLength(1);
    expect(String((transport.errors[0] as { error: unknown }).error)).toContain('the model call failed');
    expectNoIds([...sent, ...lines]);
  });

  it('fails open on a limiter error by default, logging it at most once per 10 s', async () => {
    const { logger, lines } = capturedLogger();
    const broken = { on: false };
    const clock = { now: () => (broken.on ? thrower() : systemClock.now()) };
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '1/m' }, { logger, clock });
    bot.use(limiter);
    const seen: number[] = [];
    bot.on('message', (ctx) => void seen.push(ctx.msg.message_id));
    transport = await start(bot, api);
    await limiter.ready;

    broken.on = true;
    await transport.deliver(...Array.from({ length: 4 }, (_, i) => textUpdate('hello', i)));
    expect(seen).toHaveLength(4);
    expect(transport.errors).toEqual([]);
    const failures = lines.filter((l) => l.includes('rate limiter failed; update let through (fail_open)'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('clock broke');
    expectNoIds(lines);
  });

  it('under on_error "fail_closed" throws the limiter error at the bot, and the handler never runs', async () => {
    const { logger, lines } = capturedLogger();
    const broken = { on: false };
    const clock = { now: () => (broken.on ? thrower() : systemClock.now()) };
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '30/m' }, { logger, clock, on_error: 'fail_closed' });
    bot.use(limiter);
    const seen: number[] = [];
    bot.on('message', (ctx) => void seen.push(ctx.msg.message_id));
    transport = await start(bot, api);
    await transport.deliver(textUpdate('before', 0));

    broken.on = true;
    await transport.deliver(textUpdate('hello', 1), textUpdate('hello', 2));
    expect(seen).toHaveLength(1);
    expect(transport.errors).toHaveLength(2);
    expect(String((transport.errors[0] as { error: unknown }).error)).toContain('clock broke');
    expect(lines.filter((l) => l.includes('rate limiter failed; update refused (fail_closed)'))).toHaveLength(1);
    expect(api.sent).toEqual([]);
  });

  it('in permissive mode lets a flood through and only logs what it would refuse', async () => {
    const { logger, lines } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '2/m' }, { logger, mode: 'permissive' });
    bot.use(limiter);
    const seen: number[] = [];
    bot.on('message', (ctx) => void seen.push(ctx.msg.message_id));
    transport = await start(bot, api);
    await transport.deliver(...Array.from({ length: 5 }, (_, i) => textUpdate('hello', i)));
    expect(seen).toHaveLength(5);
    expect(api.sent).toEqual([]);
    expect(lines.join('\n')).toContain('rate limit exceeded; request allowed (permissive)');
  });
});

describe('floodgate() options', () => {
  it('refuses invalid options at once, naming each problem', () => {
    expect(() => floodgate({ by_user: '30 per minute' })).toThrow(/^floodgate: invalid options: by_user: "30 per minute" is not a rate/);
    expect(() => floodgate({ by_user: '30/m', backend: 'redis' })).toThrow(/redis_url: backend "redis" needs redis_url/);
    expect(() => floodgate({ by_usr: '30/m', by_tool: { search: '2/m' } })).toThrow(
      'floodgate: invalid options: by_usr: unknown field (did you mean "by_user"?)',
    );
  });

  it('with tenant "group" limits a whole group together with by_tenant, and a private chat not at all by it', async () => {
    const { logger } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_tenant: '2/m' }, { logger, tenant: 'group' });
    bot.use(limiter);
    const seen: number[] = [];
    bot.on('message', (ctx) => void seen.push(ctx.from!.id));
    transport = await start(bot, api);
    try {
      // Two members of one group share its two messages a minute.
      await transport.deliver(textUpdate('a', 0), telegramUpdate('supergroup-text-second-user', 1), textUpdate('b', 2));
      await transport.deliver(textUpdate('private', 0, 'private-command'), textUpdate('private', 1, 'private-command'), textUpdate('private', 2, 'private-command'));
      expect(seen).toEqual([TELEGRAM_FLOODER_ID, TELEGRAM_BYSTANDER_ID, PRIVATE_USER_ID, PRIVATE_USER_ID, PRIVATE_USER_ID]);
      expect(api.sent.map((m) => m.text)).toEqual([expect.stringMatching(SLOW_DOWN)]);
    } finally {
      await transport.stop();
      transport = undefined;
    }
  });

  it('answers a refused button press through its callback answer, once per cooldown', async () => {
    const { logger } = capturedLogger();
    const bot = testBot(api);
    limiter = floodgate<TestContext>({ by_user: '1/m' }, { logger });
    bot.use(limiter);
    const pressed: string[] = [];
    bot.on('callback_query:data', async (ctx) => {
      pressed.push(ctx.callbackQuery.data);
      await ctx.answerCallbackQuery();
    });
    transport = await start(bot, api);
    const presses = Array.from({ length: 3 }, (_, i) => {
      const update = telegramUpdate('callback-query', i);
      update.callback_query.id = `press-${i}`;
      return update;
    });
    await transport.deliver(...presses);
    expect(pressed).toEqual(['more']);
    const answers = api.calls.filter((c) => c.method === 'answerCallbackQuery').map((c) => c.params);
    expect(answers).toEqual([{ callback_query_id: 'press-0' }, { callback_query_id: 'press-1', text: expect.stringMatching(SLOW_DOWN) }]);
    expect(api.sent).toEqual([]);
  });

  async function start(bot: ReturnType<typeof testBot>, server: BotApiServer): Promise<Transport> {
    return TRANSPORTS[1].start(bot, server);
  }
});

function thrower(): never {
  throw new Error('clock broke');
}
