import type { KeyObject } from 'node:crypto';
import { KeyedThrottle } from '../util/throttle.ts';
import { Channel, type ChannelDeps } from './channel.ts';
import { checkSignature, discordPublicKey } from './discord-signature.ts';
import { CallbackType, messageCallback, readInteraction } from './discord-wire.ts';
import type { HttpChannel } from './http.ts';
import { ReplyTimeout, TIMEOUT_REPLY } from './reply-timeout.ts';
import type { RouteRequest, RouteResponse } from './routes.ts';
import { parseJsonBody } from './wire.ts';

export interface DiscordInteractionsConfig {
  path: string;
  /** The application's public key (64 hex characters). */
  public_key: string;
}

/**
 * Discord shows "The application did not respond" after 3 s; answering a little before that with an
 * apology is better than an answer nobody will see.
 */
const DISCORD_DEADLINE_MS = 2_500;
const LOG_INTERVAL_MS = 10_000;

/**
 * Discord slash commands through an Interactions Endpoint URL, on the HTTP channel's server. Every
 * request must carry Discord's Ed25519 signature. A command becomes a message (`/search cats`) and is
 * answered inside the response; refusals are ephemeral, seen by the invoking user alone. A flooder
 * already told to slow down gets an empty 204: nothing is posted, and only they see "interaction failed".
 */
export class DiscordChannel extends Channel {
  readonly name = 'discord';
  private readonly replies: ReplyTimeout;
  private readonly key: KeyObject;
  private readonly logged = new KeyedThrottle(16);

  constructor(
    deps: ChannelDeps,
    private readonly config: DiscordInteractionsConfig,
    http: HttpChannel,
  ) {
    super(deps);
    this.key = discordPublicKey(config.public_key);
    this.replies = new ReplyTimeout(Math.min(http.replyTimeoutMs, DISCORD_DEADLINE_MS));
    // Mounted now, so the route exists before the server takes its first request.
    http.mount('POST', config.path, (request) => this.handle(request), 'webhooks');
  }

  async start(): Promise<void> {
    this.logger.info({ path: this.config.path }, 'discord interactions endpoint ready');
  }

  /** Nothing of its own to close: stopping the HTTP channel drains these requests too. */
  async stop(): Promise<void> {}

  private async handle({ headers, body, signal }: RouteRequest): Promise<RouteResponse> {
    // Discord requires a 401 for any request it did not sign (and probes the endpoint with bad ones).
    const signature = checkSignature(this.key, headers, body, this.clock.now());
    if (signature !== 'valid') {
      this.logOnce(signature, `discord interaction refused: ${signature} signature`);
      return { status: 401, body: { error: 'unauthorized', message: `${signature} request signature` } };
    }
    const parsed = parseJsonBody(body);
    if (!parsed.ok) return { status: 400, body: { error: 'bad_request', message: 'body is not valid JSON' } };
    const interaction = readInteraction(parsed.value);
    switch (interaction.kind) {
      case 'invalid':
        return { status: 400, body: { error: 'bad_request', message: interaction.problems.join('; ') } };
      case 'ping':
        return { status: 200, body: { type: CallbackType.Pong } };
      case 'autocomplete':
        // No command of ours offers suggestions: an empty list is the documented "nothing to suggest".
        return { status: 200, body: { type: CallbackType.AutocompleteResult, data: { choices: [] } } };
    }
    // The agent's signal, aborted by the request's (as for Telegram) and by the reply timeout.
    const reply = await this.replies.ask(this.agent, this.compose(interaction.message), new AbortController(), signal);
    if (reply === undefined) return { status: 200, body: messageCallback(TIMEOUT_REPLY, true) };
    if (reply.silent) return { status: 204 };
    return { status: 200, body: messageCallback(reply.text, reply.kind !== 'answer') };
  }

  /** A refused request is logged at most once per 10 s per reason, so a flood of them is no log flood. */
  private logOnce(key: string, msg: string): void {
    if (this.logged.pass(key, this.clock.now(), LOG_INTERVAL_MS)) this.logger.warn(msg);
  }
}
