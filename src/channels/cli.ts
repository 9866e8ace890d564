import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { InboundMessage } from '../bus/messages.ts';
import type { CliChannelConfig } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import { Channel, type ChannelDeps } from './channel.ts';

export interface CliStreams {
  input: Readable;
  output: Writable;
}

/**
 * An interactive terminal chat as one local user. Lines are answered one at a time, in the order
 * typed. A chat channel: a silent refusal (the user was already told to slow down in this cooldown)
 * prints nothing, exactly as a chat platform would.
 */
export class CliChannel extends Channel {
  readonly name = 'cli';
  private rl: Interface | undefined;
  /** Resolves when every line taken so far is answered. */
  private answered: Promise<void> = Promise.resolve();
  /** Resolves when the user closes the input (Ctrl-D). */
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  constructor(
    deps: ChannelDeps,
    private readonly config: CliChannelConfig,
    private readonly streams: CliStreams = { input: process.stdin, output: process.stdout },
  ) {
    super(deps);
    this.closed = new Promise((resolvePromise) => (this.markClosed = resolvePromise));
  }

  async start(): Promise<void> {
    const rl = createInterface({ input: this.streams.input, output: this.streams.output, terminal: false });
    this.rl = rl;
    this.write('Floodgate chat. Type a message, or /search <words>, /echo <text>, /time. Ctrl-D quits.\n');
    rl.on('line', (line) => {
      if (line.trim() === '') return;
      const message = this.compose({ userId: this.config.user_id, conversationId: 'cli', text: line });
      this.answered = this.answered.then(() => this.answerLine(message));
    });
    rl.on('close', () => this.markClosed());
  }

  /** Stops reading lines; resolves once the lines already typed are answered. */
  async stop(): Promise<void> {
    this.rl?.close();
    this.rl = undefined;
    await this.answered;
  }

  /** Asks the agent and prints its reply as a "bot> " line (nothing for a silent one). */
  private async answerLine(message: InboundMessage): Promise<void> {
    try {
      const reply = await this.agent.answer(message);
      if (!reply.silent) this.write(`bot> ${reply.text}\n`);
      if (this.config.status_line && this.agent.statusLine) {
        const status = await this.agent.statusLine(message);
        if (status !== '') this.write(`[${status}]\n`);
      }
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'message handling failed');
    }
  }

  private write(text: string): void {
    this.streams.output.write(text);
  }
}
