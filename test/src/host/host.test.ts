import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MessageBus } from '../../../src/bus/bus.ts';
import { ManualClock } from '../../../src/clock.ts';
import { PluginEntrySchema, type PluginEntry } from '../../../src/config/schema.ts';
import { ErrorCode, FloodgateError } from '../../../src/errors.ts';
import { HookRunner } from '../../../src/hooks/runner.ts';
import type { HookPayload } from '../../../src/hooks/schemas.ts';
import { ChatCommands } from '../../../src/host/commands.ts';
import { PluginHost } from '../../../src/host/host.ts';
import { Services } from '../../../src/host/services.ts';
import { AdminRoutes } from '../../../src/channels/admin.ts';
import type { HttpChannel } from '../../../src/channels/http.ts';
import type { RouteHandler } from '../../../src/channels/routes.ts';
import { STAGER_SERVICE } from '../../fixtures/plugins/stager/index.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { IdentityHasher } from '../../../src/logger.ts';
import { captureLogs, LEVEL } from '../support/logs.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));
/** Not a real file: only its folder matters, since plugin paths are relative to it. */
const CONFIG_PATH = join(FIXTURES, 'config.json');

const prompt: HookPayload<'prePromptFetch'> = {
  prompt_id: 'chat',
  text: 'hello',
  context: { message_id: 'm', channel: 'http', user_id: 'u', conversation_id: 'c' },
};

function entry(fields: Partial<PluginEntry> & { name: string; path: string }): PluginEntry {
  return PluginEntrySchema.parse(fields);
}

const probe = (name: string, fields: Partial<PluginEntry> = {}): PluginEntry =>
  entry({ name, path: './plugins/probe/index.ts', ...fields });

function setup(configPath = CONFIG_PATH) {
  const logs = captureLogs();
  const clock = new ManualClock(0);
  const runner = new HookRunner(logs.logger, clock, 1000);
  const services = new Services();
  const metrics = new MetricsRegistry();
  /** The admin routes mounted on the (stand-in) HTTP channel, by path. */
  const routes = new Map<string, RouteHandler>();
  const http = {
    mount: (_method: string, path: string, handler: RouteHandler) => void routes.set(path, handler),
    unmount: (path: string) => void routes.delete(path),
  } as unknown as HttpChannel;
  const host = new PluginHost({
    runner,
    bus: new MessageBus(),
    logger: logs.logger,
    clock,
    identity: new IdentityHasher('test-salt'),
    metrics,
    services,
    admin: new AdminRoutes(http, 'admin-token', clock),
    commands: new ChatCommands(),
    configPath,
  });
  /** The probe fixture's log lines for one event, in order. */
  const events = (event: string) => logs.records().filter((r) => r.event === event);
  return { host, runner, logs, events, services, metrics, routes };
}

async function loadError(host: PluginHost, entries: PluginEntry[]): Promise<FloodgateError> {
  try {
    await host.load(entries);
  } catch (error) {
    expect(error).toBeInstanceOf(FloodgateError);
    return error as FloodgateError;
  }
  throw new Error('expected the plugins to be refused, but they loaded');
}

describe('PluginHost: loading', () => {
  it('loads a plugin from a path relative to the config file and wires its hooks', async () => {
    const { host, runner, events } = setup();
    await host.load([probe('probe', { config: { greeting: 'hi' } })]);
    expect(host.pluginNames).toEqual(['probe']);
    expect(runner.has('prePromptFetch')).toBe(true);
    expect(runner.has('preToolInvoke')).toBe(true);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-probe': 'hi' } });
    expect(events('prePromptFetch')).toHaveLength(1);
  });

  it('resolves plugin paths against the folder of whichever config file is in use', async () => {
    const { host } = setup(join(FIXTURES, 'plugins', 'config.json'));
    await host.load([entry({ name: 'probe', path: './probe/index.ts', config: { greeting: 'x' } })]);
    expect(host.pluginNames).toEqual(['probe']);
  });

  it('gives the plugin its listed name, mode and a logger tagged with that name', async () => {
    const { host, events } = setup();
    await host.load([probe('listed-as-this', { mode: 'permissive', config: { greeting: 'x' } })]);
    expect(events('setup')).toEqual([
      expect.objectContaining({ plugin: 'listed-as-this', entry: 'listed-as-this', mode: 'permissive' }),
    ]);
  });

  it('logs each plugin it loads with its settings', async () => {
    const { host, logs } = setup();
    await host.load([probe('probe', { priority: 7, on_error: 'fail_closed', config: { greeting: 'x' } })]);
    expect(logs.withMessage('plugin loaded')).toEqual([
      expect.objectContaining({
        plugin: 'probe',
        mode: 'enforce',
        priority: 7,
        on_error: 'fail_closed',
        hooks: ['prePromptFetch', 'preToolInvoke'],
      }),
    ]);
  });

  it('registers hooks with the entry priority, so config controls the order', async () => {
    const { host, runner, events } = setup();
    await host.load([
      probe('late', { priority: 50, config: { greeting: 'late' } }),
      probe('early', { priority: 5, config: { greeting: 'early' } }),
    ]);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(events('prePromptFetch').map((r) => r.plugin)).toEqual(['early', 'late']);
    // Both ran; the later one's header wins.
    expect(outcome).toEqual({ stopped: false, headers: { 'x-probe': 'late' } });
  });

  it('registers permissive plugins as permissive: their refusals do not stop the step', async () => {
    const { host, runner, events } = setup();
    await host.load([probe('watcher', { mode: 'permissive', config: { greeting: 'x', refuse_prompts: true } })]);
    expect((await runner.run('prePromptFetch', prompt)).stopped).toBe(false);
    expect(events('prePromptFetch')).toHaveLength(1);
  });

  it('registers enforcing plugins as enforcing: their refusals stop the step', async () => {
    const { host, runner } = setup();
    await host.load([probe('enforcer', { config: { greeting: 'x', refuse_prompts: true } })]);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped && outcome.plugin).toBe('enforcer');
  });

  it.each([
    ['enabled: false', { enabled: false }],
    ['mode: disabled', { mode: 'disabled' as const }],
  ])('does not load a plugin with %s, nor validate its config', async (_label, fields) => {
    const { host, runner, events } = setup();
    await host.load([
      probe('off', { ...fields, config: { greeting: 42 } }),
      probe('on', { config: { greeting: 'x' } }),
    ]);
    expect(host.pluginNames).toEqual(['on']);
    expect(events('setup').map((r) => r.plugin)).toEqual(['on']);
    await runner.run('prePromptFetch', prompt);
    expect(events('prePromptFetch').map((r) => r.plugin)).toEqual(['on']);
  });

  it('does not even import a disabled plugin whose path is wrong', async () => {
    const { host } = setup();
    await host.load([entry({ name: 'ghost', path: './plugins/does-not-exist/index.ts', enabled: false })]);
    expect(host.pluginNames).toEqual([]);
  });
});

describe('PluginHost: plugin config', () => {
  it('merges manifest default_config under the entry config', async () => {
    const { host, events } = setup();
    await host.load([probe('defaults'), probe('overridden', { config: { greeting: 'mine' } })]);
    const setups = events('setup');
    // Manifest: greeting "from-manifest", limit 2 (the schema's own default, 3, is not used).
    expect(setups[0]).toMatchObject({ plugin: 'defaults', greeting: 'from-manifest', limit: 2 });
    expect(setups[1]).toMatchObject({ plugin: 'overridden', greeting: 'mine', limit: 2 });
  });

  it("lists every problem in the plugin's config, each as plugins[i] (name).config.<field>", async () => {
    const { host, events } = setup();
    const error = await loadError(host, [
      probe('probe', { config: { greeting: 5, limit: 0, refuse_prompt: true } }),
    ]);
    expect(error.code).toBe(ErrorCode.PluginConfig);
    expect(error.message.split('\n')[0]).toBe(`${CONFIG_PATH}: invalid plugin configuration`);
    expect([...error.problems].sort()).toEqual(
      [
        'plugins[0] (probe).config.greeting: expected string, got number 5',
        'plugins[0] (probe).config.limit: Too small: expected number to be >=1',
        'plugins[0] (probe).config.refuse_prompt: unknown field (did you mean "refuse_prompts"?)',
      ].sort(),
    );
    for (const problem of error.problems) expect(error.message).toContain(`  - ${problem}`);
    expect(events('setup')).toHaveLength(0);
  });

  it('reports the problems of every plugin at once, with each one’s index and name, before starting any', async () => {
    const { host, events } = setup();
    const error = await loadError(host, [
      probe('fine', { config: { greeting: 'ok' } }),
      probe('bad-one', { config: { greeting: false } }),
      probe('bad-two', { config: { limit: 1.5 } }),
    ]);
    expect(error.problems).toEqual([
      'plugins[1] (bad-one).config.greeting: expected string, got boolean false',
      'plugins[2] (bad-two).config.limit: expected a whole number, got number 1.5',
    ]);
    expect(events('setup')).toHaveLength(0);
    expect(host.pluginNames).toEqual([]);
  });

  it('rejects duplicate plugin names', async () => {
    const { host, events } = setup();
    const error = await loadError(host, [
      probe('twin', { config: { greeting: 'a' } }),
      probe('twin', { config: { greeting: 'b' } }),
    ]);
    expect(error.code).toBe(ErrorCode.PluginConfig);
    expect(error.problems).toEqual(['plugins[1] (twin).name: another plugin is already listed as "twin"']);
    expect(events('setup')).toHaveLength(0);
  });

  it('rejects duplicate names even when one of them is disabled', async () => {
    const { host } = setup();
    const error = await loadError(host, [
      probe('twin', { enabled: false }),
      probe('twin', { config: { greeting: 'b' } }),
    ]);
    expect(error.problems).toEqual(['plugins[1] (twin).name: another plugin is already listed as "twin"']);
  });
});

describe('PluginHost: broken plugins', () => {
  it('refuses at load a plugin that registers a hook its manifest does not declare', async () => {
    const { host, runner } = setup();
    const error = await loadError(host, [entry({ name: 'sneaky', path: './plugins/undeclared-hook/index.ts' })]);
    expect(error.code).toBe(ErrorCode.HookUndeclared);
    expect(error.message).toContain('"sneaky"');
    expect(error.message).toContain('"preToolInvoke"');
    expect(error.message).toContain('available_hooks: prePromptFetch');
    // The hook it did declare and register before failing is not left behind.
    expect(runner.has('prePromptFetch')).toBe(false);
    expect(host.pluginNames).toEqual([]);
  });

  it('names the missing manifest file', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'nm', path: './plugins/no-manifest/index.ts' })]);
    expect(error.code).toBe(ErrorCode.PluginConfig);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain('plugins[0] (nm): ');
    expect(error.problems[0]).toContain(join(FIXTURES, 'plugins', 'no-manifest', 'plugin-manifest.yaml'));
    expect(error.problems[0]).toContain('cannot read manifest');
  });

  it('refuses a plugin whose manifest names a different plugin', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'mn', path: './plugins/misnamed/index.ts' })]);
    expect(error.problems).toEqual([
      'plugins[0] (mn): manifest names "somebody_else" but the module defines "misnamed"',
    ]);
  });

  it('lists every problem in an invalid manifest', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'bm', path: './plugins/bad-manifest/index.ts' })]);
    const manifest = join(FIXTURES, 'plugins', 'bad-manifest', 'plugin-manifest.yaml');
    expect(error.problems).toHaveLength(2);
    expect(error.problems).toContain(
      `plugins[0] (bm): ${manifest}: version: required field is missing (expected string)`,
    );
    expect(error.problems.some((p) => p.startsWith(`plugins[0] (bm): ${manifest}: available_hooks[0]: string "postReply"`))).toBe(
      true,
    );
  });

  it('names a plugin path that does not exist', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'ghost', path: './plugins/does-not-exist/index.ts' })]);
    expect(error.problems).toEqual([`plugins[0] (ghost).path: ${join(FIXTURES, 'plugins', 'does-not-exist', 'index.ts')} does not exist`]);
  });

  it('refuses a module whose default export is not a plugin', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'nap', path: './plugins/not-a-plugin/index.ts' })]);
    expect(error.problems).toEqual([
      `plugins[0] (nap).path: ${join(FIXTURES, 'plugins', 'not-a-plugin', 'index.ts')} does not export a plugin (definePlugin(...)) as default`,
    ]);
  });

  it('wraps a setup failure as FG_ERR_PLUGIN_LOAD and tears down the plugins already started', async () => {
    const { host, runner, events } = setup();
    const error = await loadError(host, [
      probe('first', { config: { greeting: 'x' } }),
      entry({ name: 'fragile', path: './plugins/failing-setup/index.ts' }),
      probe('never', { config: { greeting: 'y' } }),
    ]);
    expect(error.code).toBe(ErrorCode.PluginLoad);
    expect(error.message).toBe('plugin "fragile" failed to start: database unreachable');
    expect(events('setup').map((r) => r.plugin)).toEqual(['first']);
    expect(events('teardown').map((r) => r.plugin)).toEqual(['first']);
    expect(runner.has('prePromptFetch')).toBe(false);
    expect(host.pluginNames).toEqual([]);
  });
});

describe('PluginHost: teardown', () => {
  it('tears plugins down in reverse order and unregisters their hooks', async () => {
    const { host, runner, events } = setup();
    await host.load([
      probe('a', { config: { greeting: 'a' } }),
      probe('b', { config: { greeting: 'b' } }),
      probe('c', { config: { greeting: 'c' } }),
    ]);
    await host.teardown();
    expect(events('teardown').map((r) => r.plugin)).toEqual(['c', 'b', 'a']);
    expect(runner.has('prePromptFetch')).toBe(false);
    expect(runner.has('preToolInvoke')).toBe(false);
    expect(host.pluginNames).toEqual([]);
  });

  it('keeps tearing down when one teardown throws, and logs that failure', async () => {
    const { host, events, logs } = setup();
    await host.load([
      probe('a', { config: { greeting: 'a' } }),
      probe('b', { config: { greeting: 'b', teardown_fails: true } }),
      probe('c', { config: { greeting: 'c' } }),
    ]);
    await expect(host.teardown()).resolves.toBeUndefined();
    expect(events('teardown').map((r) => r.plugin)).toEqual(['c', 'b', 'a']);
    const failures = logs.records().filter((r) => r.level === LEVEL.error);
    expect(failures).toEqual([
      expect.objectContaining({ plugin: 'b', err_message: 'teardown of b exploded', msg: 'plugin teardown failed' }),
    ]);
  });

  it('tears each plugin down only once', async () => {
    const { host, events } = setup();
    await host.load([probe('a', { config: { greeting: 'a' } })]);
    await host.teardown();
    await host.teardown();
    expect(events('teardown')).toHaveLength(1);
  });
});

describe('PluginHost: reload', () => {
  const counter = (label: string, fields: Partial<PluginEntry> = {}): PluginEntry =>
    entry({ name: 'counter', path: './plugins/counter/index.ts', config: { label }, ...fields });

  it('reconfigures a plugin in place: its state carries over and the new config takes effect', async () => {
    const { host, runner } = setup();
    await host.load([counter('old')]);
    await runner.run('prePromptFetch', prompt);
    await runner.run('prePromptFetch', prompt);
    const summary = await host.reload([counter('new')]);
    expect(summary).toEqual({ unchanged: [], reconfigured: ['counter'], restarted: [], added: [], removed: [] });
    const after = await runner.run('prePromptFetch', prompt);
    expect(after).toEqual({ stopped: false, headers: { 'x-count': '3', 'x-label': 'new' } });
  });

  it('applies a new mode and priority to the running hooks', async () => {
    const { host, runner } = setup();
    await host.load([probe('strict', { config: { greeting: 'hi', refuse_prompts: true } })]);
    expect((await runner.run('prePromptFetch', prompt)).stopped).toBe(true);
    await host.reload([probe('strict', { mode: 'permissive', config: { greeting: 'hi', refuse_prompts: true } })]);
    // probe has no reconfigure(): it was restarted, now permissive, so its refusal no longer stops anything.
    expect((await runner.run('prePromptFetch', prompt)).stopped).toBe(false);
  });

  it('restarts a plugin that cannot reconfigure, adds new ones, removes dropped ones, leaves the rest', async () => {
    const { host, runner, events } = setup();
    await host.load([probe('a', { config: { greeting: 'a1' } }), probe('b', { config: { greeting: 'b1' } }), counter('c')]);
    const summary = await host.reload([
      probe('a', { config: { greeting: 'a2' } }),
      counter('c'),
      probe('d', { config: { greeting: 'd1' } }),
    ]);
    expect(summary).toEqual({ unchanged: ['counter'], reconfigured: [], restarted: ['a'], added: ['d'], removed: ['b'] });
    expect(host.pluginNames).toEqual(['a', 'counter', 'd']);
    expect(events('teardown').map((r) => r.plugin)).toEqual(['b', 'a']);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-probe': 'd1', 'x-count': '1', 'x-label': 'c' } });
  });

  it('refuses an invalid new config with every problem and changes nothing', async () => {
    const { host, runner } = setup();
    await host.load([counter('kept')]);
    const error = await host.reload([counter('kept', { config: { label: 5 } as never }), probe('p', { config: { greeting: 'x', bogus: 1 } })]).then(
      () => undefined,
      (e: unknown) => e as FloodgateError,
    );
    expect(error?.code).toBe(ErrorCode.PluginConfig);
    expect(error?.problems).toEqual([
      'plugins[0] (counter).config.label: expected string, got number 5',
      'plugins[1] (p).config.bogus: unknown field',
    ]);
    expect(host.pluginNames).toEqual(['counter']);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-count': '1', 'x-label': 'kept' } });
  });
});

const stager = (name: string, config: Record<string, unknown>, fields: Partial<PluginEntry> = {}): PluginEntry =>
  entry({ name, path: './plugins/stager/index.ts', config, ...fields });

async function reloadError(host: PluginHost, entries: PluginEntry[]): Promise<FloodgateError> {
  try {
    await host.reload(entries);
  } catch (error) {
    expect(error).toBeInstanceOf(FloodgateError);
    return error as FloodgateError;
  }
  throw new Error('expected the reload to fail, but it succeeded');
}

/** What an admin route of the stand-in HTTP channel answers (the token is the one setup() gives). */
async function callRoute(routes: Map<string, RouteHandler>, path: string): Promise<unknown> {
  const handler = routes.get(path);
  if (handler === undefined) return undefined;
  const request = { headers: { authorization: 'Bearer admin-token' }, body: Buffer.alloc(0), signal: new AbortController().signal, query: new URLSearchParams() };
  return (await handler(request)).body;
}

const serviceLabel = (services: Services) => (services.get(STAGER_SERVICE) as { label(): string } | undefined)?.label();

describe('PluginHost: a reload that fails changes nothing', () => {
  const counter = (label: string, fields: Partial<PluginEntry> = {}): PluginEntry =>
    entry({ name: 'counter', path: './plugins/counter/index.ts', config: { label }, ...fields });
  const served = { provide: true, route: '/v1/admin/stager', metric: 'fg_stager_seen_total' };

  it('a setup failing part-way: reconfigured plugins get their old config back, new instances are torn down', async () => {
    const { host, runner, events, services, routes, metrics } = setup();
    await host.load([counter('old'), stager('s', { label: 'one', ...served }, { priority: 10 }), probe('p', { priority: 20, config: { greeting: 'p1' } })]);
    expect(await runner.run('prePromptFetch', prompt)).toEqual({
      stopped: false,
      headers: { 'x-count': '1', 'x-label': 'old', 'x-s': 'one', 'x-probe': 'p1' },
    });
    const error = await reloadError(host, [
      counter('new', { mode: 'permissive' }),
      stager('s', { label: 'two', ...served }, { priority: 30 }),
      probe('p', { priority: 20, config: { greeting: 'p2' } }),
      entry({ name: 'fragile', path: './plugins/failing-setup/index.ts' }),
    ]);
    expect(error.code).toBe(ErrorCode.PluginLoad);
    expect(error.message).toBe('plugin "fragile" failed to start: database unreachable');

    // Reconfigured and then back; the new probe instance set up and then torn down; the old one kept.
    expect(events('reconfigure').map((r) => [r.plugin, r.label])).toEqual([
      ['counter', 'new'],
      ['s', 'two'],
      ['s', 'one'],
      ['counter', 'old'],
    ]);
    expect(events('setup').map((r) => [r.plugin, r.greeting ?? r.label])).toEqual([
      ['s', 'one'],
      ['p', 'p1'],
      ['p', 'p2'],
    ]);
    expect(events('teardown').map((r) => r.plugin)).toEqual(['p']);
    expect(host.pluginNames).toEqual(['counter', 's', 'p']);
    // Same instances (the count goes on), same configs, same order (s before p, by its old priority).
    expect(await runner.run('prePromptFetch', prompt)).toEqual({
      stopped: false,
      headers: { 'x-count': '2', 'x-label': 'old', 'x-s': 'one', 'x-probe': 'p1' },
    });
    expect(events('prePromptFetch').map((r) => r.plugin)).toEqual(['s', 'p', 's', 'p']);
    expect(serviceLabel(services)).toBe('one');
    expect(await callRoute(routes, '/v1/admin/stager')).toEqual({ label: 'one' });
    expect(metrics.render()).toContain('fg_stager_seen_total 2\n');
    expect(runner.has('prePromptFetch')).toBe(true);
  });

  it('a reconfigure that throws: it and those before it get their old config, mode and priority back', async () => {
    const { host, runner, events } = setup();
    await host.load([stager('a', { label: 'a1' }, { priority: 1 }), stager('b', { label: 'b1', refuse: true }, { priority: 2 })]);
    const error = await reloadError(host, [
      stager('a', { label: 'a2' }, { priority: 3 }),
      stager('b', { label: 'b2', refuse: true, fail_reconfigure: true }, { priority: 2, mode: 'permissive' }),
    ]);
    expect(error.code).toBe(ErrorCode.PluginLoad);
    expect(error.message).toBe('plugin "b" failed to reconfigure: b cannot take label b2');
    expect(events('reconfigure').map((r) => [r.plugin, r.label])).toEqual([
      ['a', 'a2'],
      ['b', 'b2'],
      ['b', 'b1'],
      ['a', 'a1'],
    ]);
    // a still runs first with its old label; b still enforces its refusal.
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped && outcome.plugin).toBe('b');
    expect(events('prePromptFetch').map((r) => [r.plugin, r.label])).toEqual([
      ['a', 'a1'],
      ['b', 'b1'],
    ]);
  });

  it('a replaced plugin whose new instance fails to start keeps its old instance, services, route and metric', async () => {
    const { host, runner, events, services, routes, metrics } = setup();
    await host.load([stager('s', { label: 'one', restart_only: true, ...served })]);
    await runner.run('prePromptFetch', prompt);
    const error = await reloadError(host, [stager('s', { label: 'two', restart_only: true, fail_setup: true, ...served })]);
    expect(error.message).toBe('plugin "s" failed to start: s cannot start');
    expect(events('teardown')).toHaveLength(0);
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: { 'x-s': 'one' } });
    expect(serviceLabel(services)).toBe('one');
    expect(await callRoute(routes, '/v1/admin/stager')).toEqual({ label: 'one' });
    expect(metrics.render()).toContain('fg_stager_seen_total 2\n');
  });
});

describe('PluginHost: staged instances', () => {
  const served = { provide: true, route: '/v1/admin/stager', metric: 'fg_stager_seen_total' };

  it('restarts a plugin whose new instance provides the same service, route and metric as the old one', async () => {
    const { host, runner, events, services, routes, metrics } = setup();
    await host.load([stager('s', { label: 'one', restart_only: true, ...served })]);
    await runner.run('prePromptFetch', prompt);
    const summary = await host.reload([stager('s', { label: 'two', restart_only: true, ...served })]);
    expect(summary.restarted).toEqual(['s']);
    // The new instance was set up before the old one was torn down.
    expect(events('setup').map((r) => r.label)).toEqual(['one', 'two']);
    expect(events('teardown').map((r) => r.label)).toEqual(['one']);
    expect(serviceLabel(services)).toBe('two');
    expect(await callRoute(routes, '/v1/admin/stager')).toEqual({ label: 'two' });
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: { 'x-s': 'two' } });
    expect(metrics.render()).toContain('fg_stager_seen_total 1\n');
  });

  it('still refuses a service another plugin keeps, and lets one a removed plugin held be taken', async () => {
    const { host, services } = setup();
    await host.load([stager('a', { label: 'a', provide: true, route: '/v1/admin/a' })]);
    const clash = await reloadError(host, [
      stager('a', { label: 'a', provide: true, route: '/v1/admin/a' }),
      stager('b', { label: 'b', provide: true }),
    ]);
    expect(clash.message).toBe('plugin "b" failed to start: service "stager_label" is already provided by plugin "a"');
    const route = await reloadError(host, [
      stager('a', { label: 'a', provide: true, route: '/v1/admin/a' }),
      stager('b', { label: 'b', route: '/v1/admin/a' }),
    ]);
    expect(route.message).toBe('plugin "b" failed to start: admin route /v1/admin/a is already served by plugin "a"');
    expect(serviceLabel(services)).toBe('a');
    await host.reload([stager('b', { label: 'b', provide: true, route: '/v1/admin/a' })]);
    expect(serviceLabel(services)).toBe('b');
  });
});

describe('PluginHost: a plugin whose setup fails keeps nothing', () => {
  const everything = { provide: true, route: '/v1/admin/stager', metric: 'fg_stager_seen_total', fail_setup: true };

  it('at load: no hook, service, admin route or metric is left behind', async () => {
    const { host, runner, services, routes, metrics } = setup();
    const error = await loadError(host, [stager('s', { label: 'x', ...everything })]);
    expect(error.message).toBe('plugin "s" failed to start: s cannot start');
    expect(runner.has('prePromptFetch')).toBe(false);
    expect(serviceLabel(services)).toBeUndefined();
    expect(routes.has('/v1/admin/stager')).toBe(false);
    expect(metrics.render()).toBe('\n');
  });

  it('on reload, as a new plugin: nothing of it is left, and a later reload may add it', async () => {
    const { host, runner, services, routes, metrics } = setup();
    await host.load([probe('p', { config: { greeting: 'p' } })]);
    await reloadError(host, [probe('p', { config: { greeting: 'p' } }), stager('s', { label: 'x', ...everything })]);
    expect(host.pluginNames).toEqual(['p']);
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: { 'x-probe': 'p' } });
    expect(serviceLabel(services)).toBeUndefined();
    expect(routes.has('/v1/admin/stager')).toBe(false);
    expect(metrics.render()).toBe('\n');
    await host.reload([probe('p', { config: { greeting: 'p' } }), stager('s', { label: 'x', ...everything, fail_setup: false })]);
    expect(serviceLabel(services)).toBe('x');
  });
});

describe('PluginHost: finding a plugin', () => {
  const limiterConfig = { by_user: '30/m' };

  it('finds the bundled rate limiter by name alone, from the manifest at the repository root', async () => {
    const { host, runner } = setup();
    await host.load([PluginEntrySchema.parse({ name: 'rate_limiter', config: limiterConfig })]);
    expect(host.pluginNames).toEqual(['rate_limiter']);
    expect(runner.has('prePromptFetch')).toBe(true);
    await host.teardown();
  });

  it('takes a folder whose manifest names the entry module, and a module named by a manifest above it', async () => {
    const repo = join(FIXTURES, '..', '..');
    for (const path of [repo, join(repo, 'plugins/rate-limiter/index.ts')]) {
      const { host } = setup();
      await host.load([entry({ name: 'rate_limiter', path, config: limiterConfig })]);
      expect(host.pluginNames).toEqual(['rate_limiter']);
      await host.teardown();
    }
  });

  it('says what was looked for: an unknown bundled name, a path that does not exist, a folder whose manifest names no entry', async () => {
    const { host } = setup();
    const error = await loadError(host, [
      PluginEntrySchema.parse({ name: 'spam_filter' }),
      entry({ name: 'gone', path: './plugins/nowhere' }),
      entry({ name: 'probe', path: './plugins/probe' }),
    ]);
    expect(error.problems).toEqual([
      `plugins[0] (spam_filter).path: required: no plugin named "spam_filter" comes with Floodgate (looked in ${join(FIXTURES, '..', '..', 'plugin-manifest.yaml')}; it names "rate_limiter")`,
      `plugins[1] (gone).path: ${join(FIXTURES, 'plugins', 'nowhere')} does not exist`,
      `plugins[2] (probe): ${join(FIXTURES, 'plugins', 'probe', 'plugin-manifest.yaml')}: entry: required when path names the folder`,
    ]);
  });
});
