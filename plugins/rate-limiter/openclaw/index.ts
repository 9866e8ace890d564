import { definePluginEntry } from 'openclaw/plugin-sdk/plugin-entry';
import { closeSharedLimiter, sharedLimiter } from './adapter.ts';

/**
 * Floodgate's rate limiter as an OpenClaw plugin. This entry only wires OpenClaw's hooks to the
 * adapter (adapter.ts), which maps their events to the limiter and its answers back.
 *
 * Every registration (OpenClaw registers a module in "full" and "discovery" mode, and both copies'
 * hooks receive events) gets the process's one limiter for its config, so the counts are not split.
 */
export default definePluginEntry({
  id: 'floodgate-rate-limiter',
  name: 'Floodgate rate limiter',
  description: 'Limits how often each sender, group and tool may go to the model, with one friendly slow-down reply per cooldown.',
  register(api) {
    const limiter = sharedLimiter(api.pluginConfig, api.logger);
    limiter.registered(api.registrationMode);
    // Before other plugins' claims: a refused message should reach nothing else.
    api.on('before_dispatch', (event, ctx) => limiter.beforeDispatch(event, ctx), { priority: 1000 });
    api.on('before_tool_call', (event, ctx) => limiter.beforeToolCall(event, ctx), { priority: 1000 });
    api.on('gateway_stop', () => closeSharedLimiter(api.pluginConfig));
  },
});
