import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Bot, webhookCallback, type Context } from 'grammy';
import type { FloodgateFlavor } from '../../../../plugins/rate-limiter/grammy/index.ts';
import { createLogger, type Logger } from '../../../../src/plugin-sdk.ts';
import { TELEGRAM_SECRET, TELEGRAM_SECRET_HEADER, fixture, type Payload } from '../../../support/platforms.ts';
import { BOT_TOKEN, type BotApiServer } from './bot-api.ts';

export type TestContext = Context & FloodgateFlavor;

/** A real grammY bot whose Bot API is the test's server. */
export function testBot(api: BotApiServer): Bot<TestContext> {
  return new Bot<TestContext>(BOT_TOKEN, { client: { apiRoot: api.url } });
}

/** Floodgate's logger writing its JSON lines into `lines`. */
export function capturedLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } }), lines };
}

/** How updates reach the bot: each `deliver` resolves once the bot has handled every update given. */
export interface Transport {
  readonly name: string;
  deliver(...updates: Payload[]): Promise<void>;
  /** What the bot threw while handling updates (grammY's BotError, wrapping the middleware's error). */
  readonly errors: unknown[];
  stop(): Promise<void>;
}

/** grammY's webhookCallback on a node http server; each update a real POST, one after another. */
export async function byWebhook(bot: Bot<TestContext>): Promise<Transport> {
  const errors: unknown[] = [];
  const callback = webhookCallback(bot, 'http', { secretToken: TELEGRAM_SECRET });
  const server: Server = createServer((request, response) => {
    callback(request, response).catch((error: unknown) => {
      errors.push(error);
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/telegram`;
  return {
    name: 'webhook',
    errors,
    async deliver(...updates) {
      for (const update of updates) {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET },
          body: JSON.stringify(update),
        });
        await response.arrayBuffer();
      }
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** bot.start(): long polling against the test's Bot API server. */
export async function byPolling(bot: Bot<TestContext>, api: BotApiServer): Promise<Transport> {
  const errors: unknown[] = [];
  bot.catch((error) => void errors.push(error));
  let started!: () => void;
  const onStart = new Promise<void>((resolve) => (started = resolve));
  const running = bot.start({ timeout: 1, onStart: () => started() });
  await Promise.race([onStart, running]);
  return {
    name: 'long polling',
    errors,
    deliver: (...updates) => api.push(...updates),
    async stop() {
      await bot.stop();
      await running;
    },
  };
}

export const TRANSPORTS = [
  { name: 'webhook', start: (bot: Bot<TestContext>, _api: BotApiServer) => byWebhook(bot) },
  { name: 'long polling', start: (bot: Bot<TestContext>, api: BotApiServer) => byPolling(bot, api) },
] as const;

/**
 * A text message of the supergroup fixture's flooder (or of `from`, another fixture's sender), the
 * `n`th of a stream: update and message ids move on as Telegram's do.
 */
export function textUpdate(text: string, n: number, base = 'supergroup-command'): Payload {
  const update = fixture('telegram', base);
  update.update_id += n;
  update.message.message_id += n;
  update.message.text = text;
  delete update.message.entities;
  return update;
}

/** A command message (`/name args`, with its bot_command entity) of the fixture's sender. */
export function commandUpdate(command: string, args: string, n: number, base = 'supergroup-command'): Payload {
  const update = textUpdate(`/${command}${args === '' ? '' : ` ${args}`}`, n, base);
  update.message.entities = [{ offset: 0, length: command.length + 1, type: 'bot_command' }];
  return update;
}
