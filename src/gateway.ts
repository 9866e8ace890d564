import { createAgent, type Agent } from './agent/create-agent.ts';
import { MessageBus } from './bus/bus.ts';
import type { InboundMessage, OutboundReply } from './bus/messages.ts';
import type { Answerer, Channel } from './channels/channel.ts';
import { AdminRoutes } from './channels/admin.ts';
import { CliChannel, type CliStreams } from './channels/cli.ts';
import { DiscordChannel } from './channels/discord.ts';
import { HttpChannel } from './channels/http.ts';
import { TelegramChannel } from './channels/telegram.ts';
import { systemClock, type Clock } from './clock.ts';
import type { LoadedConfig } from './config/load.ts';
import type { GatewayConfig } from './config/schema.ts';
import { ErrorCode, FloodgateError, errorMessage } from './errors.ts';
import { RequestHooks } from './hooks/request-hooks.ts';
import { HookRunner } from './hooks/runner.ts';
import { ChatCommands, type CommandHandler } from './host/commands.ts';
import { PluginHost, type ReloadSummary } from './host/host.ts';
import { Services } from './host/services.ts';
import { MetricsRegistry } from './metrics/registry.ts';
import { runtimeMetrics } from './metrics/runtime.ts';
import { IdentityHasher, createLogger, type Logger } from './logger.ts';
import { KeyedThrottle } from './util/throttle.ts';

export interface GatewayOptions {
  loaded: LoadedConfig;
  logger?: Logger;
  clock?: Clock;
  /** Where the CLI channel reads and writes, when it is enabled (default: the terminal). */
  cliStreams?: CliStreams;
  /** Where the agent reads its secrets (the API key): default process.env. */
  env?: NodeJS.ProcessEnv;
}

function requireSetting<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new FloodgateError(ErrorCode.Config, `${field}: required by the enabled chat channels`);
  return value;
}

const LISTENER_LOG_INTERVAL_MS = 10_000;

const COMMAND_FAILED_REPLY = 'Sorry, that command could not be answered just now. Please try again.';

/**
 * Config, bus, plugin host, channels and the agent, started and stopped in the right order. The
 * channels ask the gateway for each message's answer (it is their Answerer) and await it.
 */
export class Gateway implements Answerer {
  readonly bus = new MessageBus();
  readonly metrics = new MetricsRegistry();
  readonly services = new Services();
  readonly admin: AdminRoutes;
  /** Chat commands plugins answer themselves, before the agent. */
  readonly commands = new ChatCommands();
  readonly runner: HookRunner;
  readonly host: PluginHost;
  readonly agent: Agent;
  readonly channels: Channel[] = [];
  readonly logger: Logger;
  private stopping: Promise<void> | undefined;
  private readonly clock: Clock;
  /** Messages being answered; stop() waits until there are none. */
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private readonly listenerFailures = new KeyedThrottle(4);

  /** The config running now (plugins follow reloads). */
  private config: GatewayConfig;
  private reloading: Promise<void> = Promise.resolve();

  private constructor(private readonly options: GatewayOptions) {
    const { config, path } = options.loaded;
    this.config = config;
    const clock = (this.clock = options.clock ?? systemClock);
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.runner = new HookRunner(this.logger.child({ component: 'hooks' }), clock, config.hooks.timeout_ms);
    this.agent = createAgent(config.agent, {
      runner: this.runner,
      logger: this.logger.child({ component: 'agent' }),
      clock,
      configDir: options.loaded.dir,
      env: options.env ?? process.env,
    });
    const deps = (name: string) => ({ agent: this, clock, logger: this.logger.child({ channel: name }) });
    const { http, cli, telegram, discord } = config.channels;
    const httpChannel = http.enabled ? new HttpChannel(deps('http'), http, new RequestHooks(this.runner, this.metrics)) : undefined;
    if (httpChannel) {
      this.channels.push(httpChannel);
      const runtime = runtimeMetrics();
      httpChannel.mount(
        'GET',
        '/metrics',
        async () => ({
          status: 200,
          text: this.metrics.render() + (await runtime.metrics()),
          contentType: 'text/plain; version=0.0.4; charset=utf-8',
        }),
        'metrics',
      );
    }
    this.admin = new AdminRoutes(httpChannel, http.admin_token, clock);
    this.host = new PluginHost({
      runner: this.runner,
      bus: this.bus,
      logger: this.logger,
      clock,
      identity: new IdentityHasher(config.log.identity_salt),
      metrics: this.metrics,
      services: this.services,
      admin: this.admin,
      commands: this.commands,
      configPath: path,
    });
    if (cli.enabled) this.channels.push(new CliChannel(deps('cli'), cli, options.cliStreams));
    // The config schema already refuses these without the HTTP channel or their secret; this only narrows types.
    if (telegram.enabled) {
      const server = requireSetting(httpChannel, 'channels.http.enabled');
      const secret_token = requireSetting(telegram.secret_token, 'channels.telegram.secret_token');
      this.channels.push(new TelegramChannel(deps('telegram'), { path: telegram.path, secret_token }, server));
    }
    if (discord.enabled) {
      const server = requireSetting(httpChannel, 'channels.http.enabled');
      const public_key = requireSetting(discord.public_key, 'channels.discord.public_key');
      this.channels.push(new DiscordChannel(deps('discord'), { path: discord.path, public_key }, server));
    }
  }

  /** Loads plugins (failing on any config problem before anything listens), then opens the channels. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const gateway = new Gateway(options);
    await gateway.host.load(options.loaded.config.plugins);
    try {
      await gateway.agent.start?.();
      for (const channel of gateway.channels) await channel.start();
    } catch (error) {
      await gateway.stop();
      throw error;
    }
    gateway.logger.info({ plugins: gateway.host.pluginNames, channels: gateway.channels.map((c) => c.name) }, 'gateway started');
    return gateway;
  }

  get http(): HttpChannel | undefined {
    return this.channels.find((c): c is HttpChannel => c instanceof HttpChannel);
  }

  get cli(): CliChannel | undefined {
    return this.channels.find((c): c is CliChannel => c instanceof CliChannel);
  }

  get telegram(): TelegramChannel | undefined {
    return this.channels.find((c): c is TelegramChannel => c instanceof TelegramChannel);
  }

  get discord(): DiscordChannel | undefined {
    return this.channels.find((c): c is DiscordChannel => c instanceof DiscordChannel);
  }

  private readonly replies = this.metrics.counter(
    'floodgate_replies_total',
    'Replies sent back to channels, by channel and kind (answer, refused, error).',
    ['channel', 'kind'],
  );

  /**
   * The agent's answer to `message`, as every channel asks for it: `signal` (the client's) becomes the
   * message's, so the agent and its hooks learn when nobody waits any more. The bus is told of the
   * message (`message:in`) and of its reply (`message:out`), as facts for observers: a listener that
   * throws is logged and changes nothing. The reply is counted once, whether or not its channel still
   * waited for it. stop() waits for every message being answered.
   */
  async answer(message: InboundMessage, signal?: AbortSignal): Promise<OutboundReply> {
    if (signal !== undefined) message.signal = signal;
    this.inFlight++;
    try {
      this.tell('message:in', message);
      const command = this.commands.match(message.text);
      const reply = command === undefined ? await this.agent.handle(message) : await this.command(message, command);
      this.replies.inc({ channel: reply.channel, kind: reply.kind });
      this.tell('message:out', reply);
      return reply;
    } finally {
      if (--this.inFlight === 0) this.drained?.();
    }
  }

  /** The plugins' status line for one user (see ChatCommands.statusLine); '' when a plugin fails to say. */
  async statusLine(who: Pick<InboundMessage, 'channel' | 'userId' | 'tenantId' | 'conversationId'>): Promise<string> {
    try {
      return await this.commands.statusLine(who);
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'status line failed');
      return '';
    }
  }

  /** A plugin's chat command answered; one that fails gets the usual apology, never a crash. */
  private async command(message: InboundMessage, { handler, args }: { handler: CommandHandler; args: string }): Promise<OutboundReply> {
    const { id, channel, userId, tenantId, conversationId, signal } = message;
    const base = { messageId: id, channel, conversationId, headers: {}, silent: false };
    try {
      const text = await handler({ channel, userId, tenantId, conversationId, args, signal });
      return { ...base, kind: 'answer', status: 200, text };
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'chat command failed');
      return { ...base, kind: 'error', status: 500, code: 'internal_error', text: COMMAND_FAILED_REPLY };
    }
  }

  /** Emits a message event; a listener's failure never reaches the message. */
  private tell(event: 'message:in', message: InboundMessage): void;
  private tell(event: 'message:out', reply: OutboundReply): void;
  private tell(event: 'message:in' | 'message:out', value: InboundMessage | OutboundReply): void {
    try {
      this.bus.emit(event as 'message:in', value as InboundMessage);
    } catch (error) {
      if (this.listenerFailures.pass(event, this.clock.now(), LISTENER_LOG_INTERVAL_MS)) {
        this.logger.error({ event, err_message: errorMessage(error) }, 'bus listener failed');
      }
    }
  }

  /**
   * Applies a re-read config.json (SIGHUP) without dropping state or messages in flight: plugins are
   * reconfigured, added or removed (see PluginHost.reload). An invalid config throws with every
   * problem and the running one stays. Channel, hook and log settings take effect on restart.
   */
  reload(loaded: LoadedConfig): Promise<ReloadSummary> {
    const next = this.reloading.then(async () => {
      const summary = await this.host.reload(loaded.config.plugins);
      const restartOnly = (['channels', 'hooks', 'log', 'agent'] as const).filter(
        (section) => JSON.stringify(loaded.config[section]) !== JSON.stringify(this.config[section]),
      );
      if (restartOnly.length > 0) {
        this.logger.warn({ sections: restartOnly }, 'these config sections changed and take effect on restart');
      }
      this.config = { ...this.config, plugins: loaded.config.plugins };
      this.logger.info({ ...summary }, 'config reloaded');
      return summary;
    });
    // One reload at a time; a failed one does not block the next.
    this.reloading = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Graceful stop: channels stop taking messages, in-flight ones finish, plugins tear down in reverse. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.channels.map((c) => c.stop()));
      // Messages a channel gave up on (its reply timeout) may still be running their hooks.
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      await this.agent.close?.();
      await this.host.teardown();
      this.logger.info('gateway stopped');
    })();
    return this.stopping;
  }
}
