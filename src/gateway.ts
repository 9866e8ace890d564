import { DemoAgent } from './agent/agent.ts';
import { MessageBus } from './bus/bus.ts';
import type { OutboundReply } from './bus/messages.ts';
import type { Channel } from './channels/channel.ts';
import { CliChannel, type CliStreams } from './channels/cli.ts';
import { HttpChannel } from './channels/http.ts';
import { systemClock, type Clock } from './clock.ts';
import type { LoadedConfig } from './config/load.ts';
import { HookRunner } from './hooks/runner.ts';
import { PluginHost } from './host/host.ts';
import { IdentityHasher, createLogger, type Logger } from './logger.ts';

export interface GatewayOptions {
  loaded: LoadedConfig;
  logger?: Logger;
  clock?: Clock;
  /** Where the CLI channel reads and writes, when it is enabled (default: the terminal). */
  cliStreams?: CliStreams;
}

/** Config, bus, plugin host, channels and the agent, started and stopped in the right order. */
export class Gateway {
  readonly bus = new MessageBus();
  readonly runner: HookRunner;
  readonly host: PluginHost;
  readonly agent: DemoAgent;
  readonly channels: Channel[] = [];
  readonly logger: Logger;
  private stopping: Promise<void> | undefined;

  private constructor(private readonly options: GatewayOptions) {
    const { config, path } = options.loaded;
    const clock = options.clock ?? systemClock;
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.runner = new HookRunner(this.logger.child({ component: 'hooks' }), clock, config.hooks.timeout_ms);
    this.host = new PluginHost({
      runner: this.runner,
      bus: this.bus,
      logger: this.logger,
      clock,
      identity: new IdentityHasher(config.log.identity_salt),
      configPath: path,
    });
    this.agent = new DemoAgent({ bus: this.bus, runner: this.runner, logger: this.logger.child({ component: 'agent' }), clock });
    const deps = (name: string) => ({ bus: this.bus, clock, logger: this.logger.child({ channel: name }) });
    if (config.channels.http.enabled) this.channels.push(new HttpChannel(deps('http'), config.channels.http));
    if (config.channels.cli.enabled) this.channels.push(new CliChannel(deps('cli'), config.channels.cli, options.cliStreams));
  }

  /** Loads plugins (failing on any config problem before anything listens), then opens the channels. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const gateway = new Gateway(options);
    await gateway.host.load(options.loaded.config.plugins);
    gateway.bus.on('message:out', gateway.deliver);
    gateway.agent.start();
    try {
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

  private readonly deliver = (reply: OutboundReply): void => {
    const channel = this.channels.find((c) => c.name === reply.channel);
    channel?.send(reply);
  };

  /** Graceful stop: channels stop taking messages, in-flight ones finish, plugins tear down in reverse. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.channels.map((c) => c.stop()));
      await this.agent.stop();
      this.bus.off('message:out', this.deliver);
      await this.host.teardown();
      this.logger.info('gateway stopped');
    })();
    return this.stopping;
  }
}
