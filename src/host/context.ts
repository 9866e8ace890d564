import { ADMIN_PREFIX } from '../channels/routes.ts';
import { ErrorCode, FloodgateError } from '../errors.ts';
import type { HookHandler } from '../hooks/runner.ts';
import type { HookName } from '../hooks/schemas.ts';
import type { HostedPlugin, HostedPluginDeps } from './hosted-plugin.ts';
import type { HookOptions, PluginContext } from './plugin.ts';
import { modeOf } from './prepare.ts';
import type { PluginRoster } from './roster.ts';
import type { ServiceMap } from './services.ts';

/**
 * What `plugin` gets at setup, from what it runs as now. What it registers (hooks, services, admin
 * routes) is recorded in `plugin.provided`, after the same checks the gateway makes; while it is live
 * it is served at once, once it is gone it is ignored. Hooks are checked against the manifest it
 * was set up with.
 */
export function pluginContext(plugin: HostedPlugin, deps: HostedPluginDeps, roster: PluginRoster): PluginContext<unknown> {
  const { entry, manifest, config } = plugin.prepared;
  const { provided } = plugin;
  const services: PluginContext<unknown>['services'] = {
    provide: (name, service) => {
      if (plugin.state === 'gone') return;
      const holder = roster.holderOf(plugin, (p) => p.provided.services.has(name));
      if (holder) throw new Error(`service "${String(name)}" is already provided by plugin "${holder.name}"`);
      provided.services.set(name, service);
      if (plugin.state === 'live') deps.services.provide(entry.name, name, service);
    },
    // A staged instance sees the services there will be; a live one, those served now.
    get: (name) => {
      const from = plugin.state === 'staged' ? roster.next() : roster.live;
      return from.find((p) => p.provided.services.has(name))?.provided.services.get(name) as ServiceMap[typeof name] | undefined;
    },
  };
  const admin: PluginContext<unknown>['admin'] = {
    route: (method, path, handler) => {
      if (plugin.state === 'gone') return;
      if (!path.startsWith(ADMIN_PREFIX) || path.length === ADMIN_PREFIX.length) {
        throw new Error(`an admin route's path must start with ${ADMIN_PREFIX} and name something: ${path}`);
      }
      const holder = provided.routes.has(path) ? plugin : roster.holderOf(plugin, (p) => p.provided.routes.has(path));
      if (holder) throw new Error(`admin route ${path} is already served by plugin "${holder.name}"`);
      provided.routes.set(path, { method, handler });
      if (plugin.state === 'live') deps.admin.add(entry.name, method, path, handler);
    },
  };
  const commands: PluginContext<unknown>['commands'] = {
    register: (name, handler, options) => {
      if (plugin.state === 'gone') return;
      const holder = provided.commands.has(name) ? plugin : roster.holderOf(plugin, (p) => p.provided.commands.has(name));
      if (holder) throw new Error(`command /${name} is already answered by plugin "${holder.name}"`);
      provided.commands.set(name, { handler, options });
      if (plugin.state === 'live') deps.commands.add(entry.name, name, handler, options);
    },
  };
  const declared = new Set<string>(manifest.available_hooks);
  const register = <N extends HookName>(hook: N, handler: HookHandler<N>, options?: HookOptions): void => {
    if (!declared.has(hook)) {
      throw new FloodgateError(
        ErrorCode.HookUndeclared,
        `plugin "${entry.name}" registered hook "${hook}", which its manifest does not declare (available_hooks: ${manifest.available_hooks.join(', ')})`,
      );
    }
    if (plugin.state === 'gone') return;
    provided.hooks.push({ hook, handler: handler as HookHandler<HookName>, options });
    if (plugin.state === 'live') deps.runner.replace(roster.live.flatMap((p) => p.registrations()));
  };
  return {
    name: entry.name,
    config,
    mode: modeOf(entry),
    logger: deps.logger.child({ plugin: entry.name }),
    clock: deps.clock,
    identity: deps.identity,
    bus: deps.bus,
    metrics: provided.metrics,
    services,
    admin,
    commands,
    hooks: { register },
  };
}
