import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The bot of the recorded fixtures (test/fixtures/telegram: the `from` of the bot's own messages). */
export const BOT_INFO = {
  id: 7704511923,
  is_bot: true as const,
  first_name: 'Floodgate Demo',
  username: 'FloodgateDemoBot',
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: false,
  can_connect_to_business: false,
  has_main_web_app: false,
};

export const BOT_TOKEN = '7704511923:AAE-test_token_for_loopback_only';

/** One Bot API call the bot made. */
export interface ApiCall {
  method: string;
  params: Record<string, any>;
}

type Update = Record<string, any>;

interface Waiter {
  offset: number;
  answer: (updates: Update[]) => void;
}

/** How long a getUpdates with nothing to return is held at most: a short long poll, for tests. */
const MAX_HOLD_MS = 1_000;

/**
 * A Bot API server of the test's own on loopback, the `apiRoot` of a grammY bot: getMe, getUpdates
 * (long polling: held until updates are queued or a short timeout), sendMessage and answerCallbackQuery
 * (recorded), deleteWebhook, and `ok: true` for anything else. Every call is recorded.
 */
export class BotApiServer {
  readonly calls: ApiCall[] = [];
  private readonly queue: Update[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly server: Server;
  private nextUpdateId = 1_000;
  private nextMessageId = 50_000;
  /** The highest offset any getUpdates confirmed: every update below it has been handled. */
  private confirmed = 0;
  private readonly confirmations = new Set<() => void>();
  url = '';

  private constructor() {
    this.server = createServer((request, response) => void this.handle(request, response));
  }

  static async start(): Promise<BotApiServer> {
    const api = new BotApiServer();
    await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve));
    api.url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
    return api;
  }

  /** The messages the bot sent (sendMessage calls), in order. */
  get sent(): Record<string, any>[] {
    return this.calls.filter((c) => c.method === 'sendMessage').map((c) => c.params);
  }

  /** Forgets what was recorded (between tests on one server). */
  reset(): void {
    this.calls.length = 0;
  }

  /**
   * Queues updates for getUpdates, numbered on from the last ones (as Telegram numbers them), and
   * resolves once the bot has handled them all: grammY asks for the next batch only then, confirming
   * these with its offset.
   */
  async push(...updates: Update[]): Promise<void> {
    for (const update of updates) this.queue.push({ ...update, update_id: this.nextUpdateId++ });
    this.wake();
    const last = this.nextUpdateId - 1;
    if (this.confirmed > last) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.confirmations.delete(check);
        reject(new Error(`the bot did not fetch past update ${last} within 10 s`));
      }, 10_000);
      const check = () => {
        if (this.confirmed <= last) return;
        clearTimeout(timer);
        this.confirmations.delete(check);
        resolve();
      };
      this.confirmations.add(check);
    });
  }

  async stop(): Promise<void> {
    for (const waiter of this.waiters) waiter.answer([]);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pending(offset: number): Update[] {
    // Telegram forgets updates below the offset once it is confirmed.
    while (this.queue.length > 0 && this.queue[0]!.update_id < offset) this.queue.shift();
    return this.queue.slice();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      const updates = this.pending(waiter.offset);
      if (updates.length > 0) waiter.answer(updates);
    }
  }

  private confirm(offset: number): void {
    if (offset <= this.confirmed) return;
    this.confirmed = offset;
    for (const check of [...this.confirmations]) check();
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const method = /^\/bot[^/]+\/(\w+)$/.exec(request.url ?? '')?.[1];
    if (method === undefined) return send(response, 404, { ok: false, error_code: 404, description: 'Not Found' });
    const body = Buffer.concat(chunks).toString('utf8');
    const params = body === '' ? {} : (JSON.parse(body) as Record<string, any>);
    this.calls.push({ method, params });
    switch (method) {
      case 'getMe':
        return send(response, 200, { ok: true, result: BOT_INFO });
      case 'getUpdates':
        return this.getUpdates(params, response);
      case 'sendMessage':
        return send(response, 200, {
          ok: true,
          result: { message_id: this.nextMessageId++, date: Math.floor(Date.now() / 1000), chat: { id: params.chat_id, type: 'private' }, from: BOT_INFO, text: params.text },
        });
      default:
        return send(response, 200, { ok: true, result: true });
    }
  }

  private getUpdates(params: Record<string, any>, response: ServerResponse): void {
    const offset = typeof params.offset === 'number' ? params.offset : 0;
    this.confirm(offset);
    const ready = this.pending(offset);
    const holdMs = Math.min(MAX_HOLD_MS, (typeof params.timeout === 'number' ? params.timeout : 0) * 1000);
    if (ready.length > 0 || holdMs === 0) return send(response, 200, { ok: true, result: ready.slice(0, params.limit ?? 100) });
    const waiter: Waiter = {
      offset,
      answer: (updates) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        send(response, 200, { ok: true, result: updates.slice(0, params.limit ?? 100) });
      },
    };
    const timer = setTimeout(() => waiter.answer([]), holdMs);
    this.waiters.add(waiter);
    // bot.stop() aborts the long poll it has in flight.
    response.once('close', () => {
      if (!response.writableEnded) {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      }
    });
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.writableEnded || response.destroyed) return;
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}
