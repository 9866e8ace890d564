/**
 * The plugin SDK: everything a plugin may use of Floodgate, and nothing else. Plugins import this
 * module only (a test holds them to it), so the core can change behind it.
 *
 * A plugin adds its own bus events and services by declaration merging:
 *
 *   declare module '<path to>/src/plugin-sdk.ts' {
 *     interface BusEvents { 'myplugin:thing': [event: Thing] }
 *     interface ServiceMap { things: ThingView }
 *   }
 */

// Declaring a plugin and what it gets at setup.
export {
  definePlugin,
  type AdminRouteHandler,
  type HookOptions,
  type PluginContext,
  type PluginDefinition,
  type PluginInstance,
} from './host/plugin.ts';
export type { ServiceMap } from './host/services.ts';
export { AUTHENTICATED_ROUTE_GROUPS, ROUTE_GROUPS, type RouteGroup, type RouteRequest, type RouteResponse } from './channels/routes.ts';

// Hooks: what a handler receives and answers.
export {
  CONTINUE,
  HOOK_NAMES,
  type HookContext,
  type HookName,
  type HookPayload,
  type HookResult,
  type Violation,
} from './hooks/schemas.ts';
export type { HookCall, HookHandler } from './hooks/runner.ts';

// Observing: the bus, metrics, logs.
export type { BusEvents, MessageBus } from './bus/bus.ts';
export type { Counter, Gauge, Histogram, MetricsRegistry, RegisteredMetric } from './metrics/registry.ts';
// The logger and hasher themselves too, for adapters a foreign host runs (a bot framework's
// middleware, another gateway's plugin), which brings neither.
export { createLogger, IdentityHasher, type Logger, type LoggerOptions } from './logger.ts';

// Time: every time-dependent part takes a clock.
export { ManualClock, systemClock, type Clock } from './clock.ts';

// Errors and config messages.
export { errorMessage } from './errors.ts';
export { closest } from './config/issues.ts';

// Bounded per-key state, for plugins that keep some per user (timer-free, evicts the oldest).
export { ExpiringMap, type Expiring } from './util/expiring-map.ts';
export { KeyedThrottle } from './util/throttle.ts';
export { flattened } from './util/flat-string.ts';

// Client addresses: parsing, canonical text, CIDR lists, prefixes (an IPv6 subscriber's /64).
export { AddressList, addressPrefix, canonicalAddress, formatAddress, parseAddress, type AddressBytes } from './util/ip-address.ts';
