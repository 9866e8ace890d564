import { sameSecret } from '../util/secrets.ts';
import { KeyedThrottle } from '../util/throttle.ts';
import { Channel, type ChannelDeps } from './channel.ts';
import type { HttpChannel } from './http.ts';
import { ReplyTimeout, TIMEOUT_REPLY } from './reply-timeout.ts';
import type { RouteRequest, RouteResponse } from './routes.ts';
import { readUpdate, sendMessageCall } from './telegram-wire.ts';
import { parseJsonBody } from './wire.ts';

export interface TelegramWebhookConfig {
  path: string;
  /** The secret_token given to setWebhook; Telegram sends it with every update. */
  secret_token: string;
}

const SECRET_HEADER = 'x-telegram-bot-api-secret-token';
const LOG_INTERVAL_MS = 10_000;
/** Answers "nothing to send": Telegram only needs a 200 to consider the update delivered. */
const NOTHING: RouteResponse = { status: 200, body: {} };

/**
 * A Telegram bot by webhook, on the HTTP channel's server. Each update is answered inside its webhook
 * response: a `sendMessage` call replying to the user's message, or `{}` when there is nothing to say
 * (an update kind it does not handle, or a flooder already told to slow down in this cooldown).
 * Users are `from.id`, conversations `chat.id`, so in a group each member has a limit of their own.
 */
export class TelegramChannel extends Channel {
  readonly name = 'telegram';
  private readonly replies: ReplyTimeout;
  private readonly logged = new KeyedThrottle(16);

  constructor(
    deps: ChannelDeps,
    private readonly config: TelegramWebhookConfig,
    http: HttpChannel,
  ) {
    super(deps);
    this.replies = new ReplyTimeout(http.replyTimeoutMs);
    // Mounted now, so the route exists before the server takes its first request.
    http.mount('POST', config.path, (request) => this.handle(request), 'webhooks');
  }

  async start(): Promise<void> {
    this.logger.info({ path: this.config.path }, 'telegram webhook ready');
  }

  /** Nothing of its own to close: stopping the HTTP channel drains these requests too. */
  async stop(): Promise<void> {}

  private async handle({ headers, body, signal }: RouteRequest): Promise<RouteResponse> {
    if (!sameSecret(headers[SECRET_HEADER], this.config.secret_token)) {
      // Never the header itself: a wrong token may be a near miss of the real one.
      this.logOnce('unauthorized', 'telegram webhook refused a request: missing or wrong secret token');
      return { status: 401, body: { error: 'unauthorized', message: 'missing or wrong X-Telegram-Bot-Api-Secret-Token' } };
    }
    const parsed = parseJsonBody(body);
    if (!parsed.ok) return { status: 400, body: { error: 'bad_request', message: 'body is not valid JSON' } };
    const update = readUpdate(parsed.value);
    if (update.kind === 'invalid') return { status: 400, body: { error: 'bad_request', message: update.problems.join('; ') } };
    if (update.kind === 'ignored') {
      this.logger.debug({ update: update.what }, 'telegram update ignored');
      return NOTHING;
    }
    const message = this.compose({ userId: String(update.userId), conversationId: String(update.chatId), text: update.text });
    // The agent's signal is a controller of its own, which the request's signal aborts (the client left,
    // or the response is sent) and so does the reply timeout: the agent stops when the wait does.
    const reply = await this.replies.ask(this.agent, message, new AbortController(), signal);
    if (reply?.silent) return NOTHING;
    return { status: 200, body: sendMessageCall(update.chatId, update.messageId, reply?.text ?? TIMEOUT_REPLY) };
  }

  /** A refused request is logged at most once per 10 s, so a flood of them is no log flood. */
  private logOnce(key: string, msg: string): void {
    if (this.logged.pass(key, this.clock.now(), LOG_INTERVAL_MS)) this.logger.warn(msg);
  }
}
