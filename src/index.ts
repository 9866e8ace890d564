/** Floodgate's public API: everything a plugin author or an embedding application needs. */
export { Gateway, type GatewayOptions } from './gateway.ts';
export { loadConfig, parseConfig, type LoadedConfig } from './config/load.ts';
export type { GatewayConfig, PluginEntry, PluginMode, OnError } from './config/schema.ts';
export { MessageBus, type BusEvents } from './bus/bus.ts';
export type { InboundMessage, OutboundReply, ReplyKind } from './bus/messages.ts';
export { Channel, type Answerer, type ChannelDeps, type InboundFields } from './channels/channel.ts';
export { HttpChannel } from './channels/http.ts';
export { CliChannel, type CliStreams } from './channels/cli.ts';
export { TelegramChannel, type TelegramWebhookConfig } from './channels/telegram.ts';
export { DiscordChannel, type DiscordInteractionsConfig } from './channels/discord.ts';
export { ReplyTimeout, TIMEOUT_REPLY } from './channels/reply-timeout.ts';
export type { RouteHandler, RouteRequest, RouteResponse } from './channels/routes.ts';
export { MessageRequest, MessageResponse, RefusedResponse, ErrorResponse } from './channels/wire.ts';
export {
  HOOK_NAMES,
  HOOK_PAYLOADS,
  HookContext,
  HookResult,
  Violation,
  CONTINUE,
  type HookName,
  type HookPayload,
} from './hooks/schemas.ts';
export { HookRunner, type HookHandler, type HookOutcome, type HookRegistration } from './hooks/runner.ts';
export { PluginHost } from './host/host.ts';
export { definePlugin, type PluginContext, type PluginDefinition, type PluginInstance } from './host/plugin.ts';
export { ErrorCode, FloodgateError } from './errors.ts';
export { createLogger, IdentityHasher, type Logger } from './logger.ts';
export { systemClock, ManualClock, type Clock } from './clock.ts';
