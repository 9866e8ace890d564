import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MessageBus } from '../../../src/bus/bus.ts';
import { ManualClock } from '../../../src/clock.ts';
import { PluginEntrySchema, type PluginEntry } from '../../../src/config/schema.ts';
import { ErrorCode, FloodgateError } from '../../../src/errors.ts';
import { HookRunner } from '../../../src/hooks/runner.ts';
import type { HookPayload } from '../../../src/hooks/schemas.ts';
import { PluginHost } from '../../../src/host/host.ts';
import { Services } from '../../../src/host/services.ts';
import { AdminRoutes } from '../../../src/channels/admin.ts';
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
  const host = new PluginHost({
    runner,
    bus: new MessageBus(),
    logger: logs.logger,
    clock,
    identity: new IdentityHasher('test-salt'),
    metrics: new MetricsRegistry(),
    services: new Services(),
    admin: new AdminRoutes(undefined, undefined),
    configPath,
  });
  /** The probe fixture's log lines for one event, in order. */
  const events = (event: string) => logs.records().filter((r) => r.event === event);
  return { host, runner, logs, events };
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

  it('names a plugin path that cannot be imported', async () => {
    const { host } = setup();
    const error = await loadError(host, [entry({ name: 'ghost', path: './plugins/does-not-exist/index.ts' })]);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(
      `plugins[0] (ghost).path: cannot load ${join(FIXTURES, 'plugins', 'does-not-exist', 'index.ts')}`,
    );
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
