import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.ts';
import type { OnError } from '../../../src/config/schema.ts';
import { ErrorCode, FloodgateError } from '../../../src/errors.ts';
import { HookRunner } from '../../../src/hooks/runner.ts';
import { StepCall } from '../../../src/util/step-call.ts';
import { CONTINUE, type HookName, type HookPayload, type HookResult, type Violation } from '../../../src/hooks/schemas.ts';
import { captureLogs, LEVEL } from '../support/logs.ts';

const context = { message_id: 'm-1', channel: 'http', user_id: 'alice', conversation_id: 'c-1' };
const prompt: HookPayload<'prePromptFetch'> = { prompt_id: 'chat', text: 'hello', context };
const toolCall: HookPayload<'preToolInvoke'> = { tool: 'search', args: { query: 'x' }, context };

function violation(code: string, overrides: Partial<Violation> = {}): Violation {
  return {
    code,
    reason: `${code} reason`,
    description: `${code} description`,
    httpStatus: 429,
    headers: { 'x-refused-by': code },
    details: {},
    ...overrides,
  };
}

function refuse(code: string): HookResult {
  return { continue: false, violation: violation(code) };
}

function setup(options: { timeoutMs?: number; clock?: ManualClock } = {}) {
  const logs = captureLogs();
  const clock = options.clock ?? new ManualClock(1_000_000);
  const runner = new HookRunner(logs.logger, clock, options.timeoutMs ?? 1000);
  const calls: string[] = [];
  /** Registers a prePromptFetch handler that records its plugin name, then answers `result`. */
  const add = (
    plugin: string,
    result: () => HookResult | Promise<HookResult>,
    options: { priority?: number; mode?: 'enforce' | 'permissive'; onError?: OnError; hook?: HookName } = {},
  ): void => {
    runner.register({
      plugin,
      hook: options.hook ?? 'prePromptFetch',
      handler: () => {
        calls.push(plugin);
        return result();
      },
      priority: options.priority ?? 100,
      mode: options.mode ?? 'enforce',
      onError: options.onError ?? 'fail_open',
    });
  };
  const failures = () => logs.records().filter((r) => r.level === LEVEL.error);
  return { runner, logs, clock, calls, add, failures };
}

describe('HookRunner: order', () => {
  it('runs handlers lower priority first', async () => {
    const { runner, calls, add } = setup();
    add('fifty', () => CONTINUE, { priority: 50 });
    add('ten', () => CONTINUE, { priority: 10 });
    add('thirty', () => CONTINUE, { priority: 30 });
    add('minus', () => CONTINUE, { priority: -5 });
    await runner.run('prePromptFetch', prompt);
    expect(calls).toEqual(['minus', 'ten', 'thirty', 'fifty']);
  });

  it('keeps registration order among equal priorities', async () => {
    const { runner, calls, add } = setup();
    add('c', () => CONTINUE, { priority: 20 });
    add('a', () => CONTINUE, { priority: 10 });
    add('b', () => CONTINUE, { priority: 20 });
    add('d', () => CONTINUE, { priority: 10 });
    add('e', () => CONTINUE, { priority: 20 });
    await runner.run('prePromptFetch', prompt);
    expect(calls).toEqual(['a', 'd', 'c', 'b', 'e']);
  });

  it('awaits each handler before starting the next', async () => {
    const { runner, calls, add } = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    add('slow', async () => {
      await gate;
      calls.push('slow done');
      return CONTINUE;
    }, { priority: 1 });
    add('next', () => CONTINUE, { priority: 2 });
    const running = runner.run('prePromptFetch', prompt);
    await Promise.resolve();
    expect(calls).toEqual(['slow']);
    release();
    await running;
    expect(calls).toEqual(['slow', 'slow done', 'next']);
  });

  it('runs only the handlers of the hook being run', async () => {
    const { runner, calls, add } = setup();
    add('prompt-only', () => CONTINUE, { hook: 'prePromptFetch' });
    add('tool-only', () => CONTINUE, { hook: 'preToolInvoke' });
    await runner.run('preToolInvoke', toolCall);
    expect(calls).toEqual(['tool-only']);
  });

  it('passes the payload to the handler', async () => {
    const { runner } = setup();
    const seen: unknown[] = [];
    runner.register({
      plugin: 'p',
      hook: 'preToolInvoke',
      handler: (payload) => {
        seen.push(payload);
        return CONTINUE;
      },
      priority: 1,
      mode: 'enforce',
      onError: 'fail_open',
    });
    await runner.run('preToolInvoke', toolCall);
    expect(seen).toEqual([toolCall]);
  });

  it('continues with no headers when nothing is registered', async () => {
    const { runner } = setup();
    expect(runner.has('prePromptFetch')).toBe(false);
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: undefined });
  });
});

describe('HookRunner: registration', () => {
  it('rejects an unknown hook name with FG_ERR_HOOK_UNKNOWN, naming plugin and hook', () => {
    const { runner } = setup();
    let caught: unknown;
    try {
      runner.register({
        plugin: 'typo',
        hook: 'prePromtFetch' as HookName,
        handler: () => CONTINUE,
        priority: 1,
        mode: 'enforce',
        onError: 'fail_open',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(FloodgateError);
    expect((caught as FloodgateError).code).toBe(ErrorCode.HookUnknown);
    expect((caught as FloodgateError).message).toContain('"typo"');
    expect((caught as FloodgateError).message).toContain('"prePromtFetch"');
    expect((caught as FloodgateError).message).toContain('prePromptFetch, postPromptFetch, preToolInvoke');
    expect(runner.has('prePromptFetch')).toBe(false);
  });

  it('rejects inherited property names as hooks', () => {
    const { runner } = setup();
    expect(() =>
      runner.register({
        plugin: 'p',
        hook: 'toString' as HookName,
        handler: () => CONTINUE,
        priority: 1,
        mode: 'enforce',
        onError: 'fail_open',
      }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.HookUnknown }));
  });

  it('unregisterPlugin removes every handler of that plugin and only those', async () => {
    const { runner, calls, add } = setup();
    add('gone', () => refuse('gone'), { priority: 1 });
    add('gone', () => CONTINUE, { hook: 'preToolInvoke' });
    add('kept', () => CONTINUE, { priority: 2 });
    runner.unregisterPlugin('gone');
    expect(runner.has('preToolInvoke')).toBe(false);
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped).toBe(false);
    expect(calls).toEqual(['kept']);
  });
});

describe('HookRunner: replacing every registration at once', () => {
  const registration = (plugin: string, handler: () => HookResult | Promise<HookResult>, priority = 1, hook: HookName = 'prePromptFetch') => ({
    plugin,
    hook,
    handler,
    priority,
    mode: 'enforce' as const,
    onError: 'fail_open' as const,
  });

  it('swaps the whole table: hooks not in the new list are gone, order follows priority then list order', async () => {
    const { runner, calls, add } = setup();
    add('old', () => CONTINUE);
    add('old', () => CONTINUE, { hook: 'preToolInvoke' });
    const mark = (name: string) => () => (calls.push(name), CONTINUE);
    runner.replace([registration('b', mark('b'), 5), registration('a', mark('a'), 5), registration('first', mark('first'), 1)]);
    expect(runner.has('preToolInvoke')).toBe(false);
    await runner.run('prePromptFetch', prompt);
    expect(calls).toEqual(['first', 'b', 'a']);
  });

  it('lets a message in flight finish under the registrations it started with', async () => {
    const { runner, calls, add } = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    add('slow', async () => (await gate, CONTINUE), { priority: 1 });
    add('old-next', () => CONTINUE, { priority: 2 });
    const running = runner.run('prePromptFetch', prompt);
    runner.replace([registration('new', () => (calls.push('new'), CONTINUE))]);
    release();
    await running;
    expect(calls).toEqual(['slow', 'old-next']);
    await runner.run('prePromptFetch', prompt);
    expect(calls).toEqual(['slow', 'old-next', 'new']);
  });

  it('refuses a list with an unknown hook and keeps the table it had', async () => {
    const { runner, calls, add } = setup();
    add('kept', () => CONTINUE);
    expect(() => runner.replace([registration('typo', () => CONTINUE, 1, 'prePromtFetch' as HookName)])).toThrow(
      expect.objectContaining({ code: ErrorCode.HookUnknown }),
    );
    await runner.run('prePromptFetch', prompt);
    expect(calls).toEqual(['kept']);
  });
});

describe('HookRunner: violations', () => {
  it('an enforcing violation stops the step and skips later handlers', async () => {
    const { runner, calls, add } = setup();
    add('first', () => CONTINUE, { priority: 1 });
    add('enforcer', () => refuse('rate_limited'), { priority: 2 });
    add('later', () => CONTINUE, { priority: 3 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: true, violation: violation('rate_limited'), plugin: 'enforcer' });
    expect(calls).toEqual(['first', 'enforcer']);
  });

  it('an async enforcing violation stops the step too', async () => {
    const { runner, calls, add } = setup();
    add('enforcer', async () => refuse('async_no'), { priority: 1 });
    add('later', () => CONTINUE, { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped).toBe(true);
    expect(calls).toEqual(['enforcer']);
  });

  it('a permissive violation does not stop the step', async () => {
    const { runner, calls, add } = setup();
    add('watcher', () => refuse('would_limit'), { priority: 1, mode: 'permissive' });
    add('later', () => ({ continue: true, headers: { 'x-later': '1' } }), { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-later': '1' } });
    expect(calls).toEqual(['watcher', 'later']);
  });

  it('logs permissive violations, once per plugin and code every 10 s', async () => {
    const { runner, add, logs, clock } = setup();
    add('watcher', () => refuse('would_limit'), { mode: 'permissive' });
    const ignored = () => logs.records().filter((r) => r.msg === 'violation ignored (permissive)');
    for (let i = 0; i < 50; i++) await runner.run('prePromptFetch', prompt);
    expect(ignored()).toHaveLength(1);
    expect(ignored()[0]).toMatchObject({ plugin: 'watcher', code: 'would_limit', reason: 'would_limit reason' });
    expect(JSON.stringify(ignored()[0])).not.toContain('alice');
    clock.advance(10_000);
    await runner.run('prePromptFetch', prompt);
    expect(ignored()).toHaveLength(2);
  });

  it('a permissive violation does not leak its headers into the reply', async () => {
    const { runner, add } = setup();
    add('watcher', () => refuse('would_limit'), { mode: 'permissive' });
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: undefined });
  });
});

describe('HookRunner: headers', () => {
  it('merges headers from every continue result, later handlers winning', async () => {
    const { runner, add } = setup();
    add('one', () => ({ continue: true, headers: { 'x-a': '1', 'x-shared': 'one' } }), { priority: 1 });
    add('none', () => CONTINUE, { priority: 2 });
    add('two', () => ({ continue: true, headers: { 'x-b': '2', 'x-shared': 'two' } }), { priority: 3 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-a': '1', 'x-b': '2', 'x-shared': 'two' } });
  });

  it('reports no headers when no handler sets any', async () => {
    const { runner, add } = setup();
    add('one', () => CONTINUE);
    add('two', () => ({ continue: true }));
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: undefined });
  });
});

describe('HookRunner: failing handlers', () => {
  it('fail_open: a throwing handler is skipped, later handlers run, and the failure is logged once', async () => {
    const { runner, calls, add, failures } = setup();
    add('broken', () => {
      throw new Error('redis down');
    }, { priority: 1, onError: 'fail_open' });
    add('later', () => ({ continue: true, headers: { 'x-later': 'yes' } }), { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-later': 'yes' } });
    expect(calls).toEqual(['broken', 'later']);
    expect(failures()).toHaveLength(1);
    expect(failures()[0]).toMatchObject({
      plugin: 'broken',
      hook: 'prePromptFetch',
      on_error: 'fail_open',
      err_message: 'redis down',
      msg: 'plugin failed; message let through (fail_open)',
    });
  });

  it('fail_open also covers a rejected promise', async () => {
    const { runner, calls, add, failures } = setup();
    add('broken', () => Promise.reject(new Error('async boom')));
    expect((await runner.run('prePromptFetch', prompt)).stopped).toBe(false);
    expect(calls).toEqual(['broken']);
    expect(failures()[0]).toMatchObject({ plugin: 'broken', err_message: 'async boom' });
  });

  it('the failure log does not carry the payload or the user id', async () => {
    const { runner, add, logs } = setup();
    add('broken', () => {
      throw new Error('boom');
    });
    await runner.run('prePromptFetch', prompt);
    expect(logs.records()).toHaveLength(1);
    expect(JSON.stringify(logs.records())).not.toContain('alice');
  });

  it('logs repeated failures of one plugin and hook once per 10 s', async () => {
    const clock = new ManualClock(5_000);
    const { runner, calls, add, failures } = setup({ clock });
    add('broken', () => {
      throw new Error('still down');
    });
    for (let i = 0; i < 5; i++) await runner.run('prePromptFetch', prompt);
    expect(calls).toHaveLength(5);
    expect(failures()).toHaveLength(1);

    clock.advance(9_999);
    await runner.run('prePromptFetch', prompt);
    expect(calls).toHaveLength(6);
    expect(failures()).toHaveLength(1);

    clock.advance(1);
    await runner.run('prePromptFetch', prompt);
    await runner.run('prePromptFetch', prompt);
    expect(calls).toHaveLength(8);
    expect(failures()).toHaveLength(2);
  });

  it('throttles failure logs per plugin and per hook, not globally', async () => {
    const { runner, add, failures } = setup();
    const boom = (): HookResult => {
      throw new Error('boom');
    };
    add('a', boom, { priority: 1 });
    add('b', boom, { priority: 2 });
    add('a', boom, { hook: 'preToolInvoke' });
    await runner.run('prePromptFetch', prompt);
    await runner.run('prePromptFetch', prompt);
    await runner.run('preToolInvoke', toolCall);
    await runner.run('preToolInvoke', toolCall);
    expect(failures().map((r) => `${String(r.plugin)}/${String(r.hook)}`)).toEqual([
      'a/prePromptFetch',
      'b/prePromptFetch',
      'a/preToolInvoke',
    ]);
  });

  it('fail_closed: a throwing handler refuses the step with a 503 and skips later handlers', async () => {
    const { runner, calls, add, failures } = setup();
    add('strict', () => {
      throw new Error('cannot check');
    }, { priority: 1, onError: 'fail_closed' });
    add('later', () => CONTINUE, { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped).toBe(true);
    if (!outcome.stopped) return;
    expect(outcome.plugin).toBe('strict');
    expect(outcome.violation.httpStatus).toBe(503);
    expect(outcome.violation.code).toBe('plugin_unavailable');
    expect(outcome.violation.description).not.toContain('alice');
    expect(calls).toEqual(['strict']);
    expect(failures()).toHaveLength(1);
    expect(failures()[0]).toMatchObject({
      plugin: 'strict',
      on_error: 'fail_closed',
      err_message: 'cannot check',
      msg: 'plugin failed; message refused (fail_closed)',
    });
  });

  it('a permissive plugin never blocks, even with fail_closed: its failure lets the message through', async () => {
    const { runner, calls, add, failures } = setup();
    add('trial', () => {
      throw new Error('cannot check');
    }, { priority: 1, onError: 'fail_closed', mode: 'permissive' });
    add('later', () => CONTINUE, { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped).toBe(false);
    expect(calls).toEqual(['trial', 'later']);
    expect(failures()).toHaveLength(1);
    expect(failures()[0]!.msg).toBe('plugin failed; message let through (fail_open)');
  });

  it('times out a handler that never settles, after timeout_ms, and lets the message through (fail_open)', async () => {
    const { runner, calls, add, failures } = setup({ timeoutMs: 20 });
    add('hung', () => new Promise<HookResult>(() => {}), { priority: 1 });
    add('later', () => ({ continue: true, headers: { 'x-later': '1' } }), { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: false, headers: { 'x-later': '1' } });
    expect(calls).toEqual(['hung', 'later']);
    expect(failures()).toHaveLength(1);
    expect(failures()[0]).toMatchObject({
      plugin: 'hung',
      code: ErrorCode.HookTimeout,
      err_message: 'did not answer prePromptFetch within 20 ms',
    });
  });

  it('a handler that may queue gets its queue time on top of timeout_ms, read on every call', async () => {
    const logs = captureLogs();
    const runner = new HookRunner(logs.logger, new ManualClock(0), 20);
    let queueMs = 200;
    runner.register({
      plugin: 'queueing',
      hook: 'prePromptFetch',
      handler: () => new Promise<HookResult>((resolve) => setTimeout(() => resolve({ continue: true, headers: { 'x-waited': '1' } }), 60)),
      priority: 1,
      mode: 'enforce',
      onError: 'fail_closed',
      queueMs: () => queueMs,
    });
    expect(await runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: { 'x-waited': '1' } });
    queueMs = 0;
    const late = await runner.run('prePromptFetch', prompt);
    expect(late.stopped && late.violation.code).toBe('plugin_unavailable');
  });

  it('hands every handler the caller\'s abort signal', async () => {
    const logs = captureLogs();
    const runner = new HookRunner(logs.logger, new ManualClock(0), 1000);
    const seen: (AbortSignal | undefined)[] = [];
    for (const plugin of ['sync', 'async']) {
      runner.register({
        plugin,
        hook: 'prePromptFetch',
        handler: (_payload, call) => {
          seen.push(call?.signal);
          return plugin === 'sync' ? CONTINUE : Promise.resolve(CONTINUE);
        },
        priority: 1,
        mode: 'enforce',
        onError: 'fail_open',
      });
    }
    const controller = new AbortController();
    await runner.run('prePromptFetch', prompt, { signal: controller.signal });
    await runner.run('prePromptFetch', prompt);
    expect(seen).toEqual([controller.signal, controller.signal, undefined, undefined]);
  });

  it('a timed-out fail_closed handler refuses with 503', async () => {
    const { runner, add, failures } = setup({ timeoutMs: 20 });
    add('hung', () => new Promise<HookResult>(() => {}), { onError: 'fail_closed' });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped && outcome.violation.httpStatus).toBe(503);
    expect(failures()[0]).toMatchObject({ code: ErrorCode.HookTimeout });
  });

  it('a handler that answers within timeout_ms is not timed out', async () => {
    const { runner, add, failures } = setup({ timeoutMs: 1000 });
    add('prompt', async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return refuse('late_but_in_time');
    });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped && outcome.violation.code).toBe('late_but_in_time');
    expect(failures()).toHaveLength(0);
  });

  it.each([
    ['an empty object', {}],
    ['a non-boolean continue', { continue: 'yes' }],
    ['a refusal without a violation', { continue: false }],
    ['a violation with an out-of-range status', { continue: false, violation: violation('x', { httpStatus: 200 }) }],
    ['a violation with an empty code', { continue: false, violation: violation('') }],
    ['non-string headers', { continue: true, headers: { 'x-count': 3 } }],
    ['undefined', undefined],
    ['null', null],
  ])('counts %s as a plugin error', async (_label, result) => {
    const { runner, calls, add, failures } = setup();
    add('nonsense', () => result as unknown as HookResult, { priority: 1 });
    add('later', () => CONTINUE, { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped).toBe(false);
    expect(calls).toEqual(['nonsense', 'later']);
    expect(failures()).toHaveLength(1);
    expect(failures()[0]).toMatchObject({ plugin: 'nonsense', code: ErrorCode.HookResult });
    expect(String(failures()[0]!.err_message)).toContain('returned an invalid prePromptFetch result');
  });

  it('a malformed result from a fail_closed plugin refuses with 503', async () => {
    const { runner, add } = setup();
    add('nonsense', () => ({ continue: 'maybe' }) as unknown as HookResult, { onError: 'fail_closed' });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome.stopped && outcome.violation.httpStatus).toBe(503);
  });
});

describe('HookRunner: sync handlers and payload checks', () => {
  it('accepts synchronous continue and refusal results', async () => {
    const { runner, calls, add } = setup({ timeoutMs: 1 });
    add('sync-continue', () => ({ continue: true, headers: { 'x-sync': '1' } }), { priority: 1 });
    add('sync-refuse', () => refuse('sync_no'), { priority: 2 });
    const outcome = await runner.run('prePromptFetch', prompt);
    expect(outcome).toEqual({ stopped: true, violation: violation('sync_no'), plugin: 'sync-refuse' });
    expect(calls).toEqual(['sync-continue', 'sync-refuse']);
  });

  it('rejects a malformed payload before any handler runs', async () => {
    const { runner, calls, add } = setup();
    add('p', () => CONTINUE);
    const bad = { prompt_id: 'chat', text: 42, context } as unknown as HookPayload<'prePromptFetch'>;
    expect(() => runner.run('prePromptFetch', bad)).toThrow(
      expect.objectContaining({ code: ErrorCode.HookResult, message: expect.stringContaining('/text') }),
    );
    expect(calls).toEqual([]);
  });
});

describe('HookRunner: answering at once', () => {
  it('answers at once, without a promise, when every handler answers synchronously', () => {
    const { runner, add } = setup();
    add('one', () => ({ continue: true, headers: { 'x-a': '1' } }), { priority: 1 });
    add('two', () => CONTINUE, { priority: 2 });
    expect(runner.run('prePromptFetch', prompt)).toEqual({ stopped: false, headers: { 'x-a': '1' } });
  });

  it('answers with a promise once a handler does, and runs the rest after it', async () => {
    const { runner, calls, add } = setup();
    add('sync', () => CONTINUE, { priority: 1 });
    add('async', async () => ({ continue: true, headers: { 'x-b': '2' } }), { priority: 2 });
    add('after', () => refuse('later_no'), { priority: 3 });
    const outcome = runner.run('prePromptFetch', prompt);
    expect(outcome).toBeInstanceOf(Promise);
    expect(await outcome).toMatchObject({ stopped: true, plugin: 'after' });
    expect(calls).toEqual(['sync', 'async', 'after']);
  });

  it('answers "nothing ran" when no handler is registered', () => {
    const { runner } = setup();
    expect(runner.run('postPromptFetch', { prompt_id: 'chat', outcome: 'completed', context })).toEqual({ stopped: false, headers: undefined });
  });

  it('throws at once on a malformed payload, naming the field, before any handler runs', () => {
    const { runner, calls, add } = setup();
    add('p', () => CONTINUE);
    const bad = { prompt_id: 'chat', text: 42, context } as unknown as HookPayload<'prePromptFetch'>;
    expect(() => runner.run('prePromptFetch', bad)).toThrow(expect.objectContaining({ code: ErrorCode.HookResult, message: expect.stringContaining('/text') }));
    expect(calls).toEqual([]);
  });

  it('hands handlers the call it is given, and no signal when given none', () => {
    const { runner } = setup();
    const seen: unknown[] = [];
    runner.register({
      plugin: 'p',
      hook: 'prePromptFetch',
      handler: (_payload, call) => {
        seen.push(call?.signal);
        return CONTINUE;
      },
      priority: 1,
      mode: 'enforce',
      onError: 'fail_open',
    });
    const controller = new AbortController();
    runner.run('prePromptFetch', prompt, { signal: controller.signal });
    runner.run('prePromptFetch', prompt);
    expect(seen).toEqual([controller.signal, undefined]);
  });
});

describe('HookRunner: abandoned handlers', () => {
  /** Registers a prePromptFetch handler that records the signal it read and answers `answer(signal)`. */
  function reading(runner: HookRunner, answer: (signal: AbortSignal) => Promise<HookResult>) {
    const seen: AbortSignal[] = [];
    runner.register({
      plugin: 'waiter',
      hook: 'prePromptFetch',
      handler: (_payload, call) => {
        const signal = call!.signal!;
        seen.push(signal);
        return answer(signal);
      },
      priority: 1,
      mode: 'enforce',
      onError: 'fail_open',
    });
    return seen;
  }

  it('aborts the signal of a handler that does not answer in time, with the timeout as reason', async () => {
    const { runner } = setup({ timeoutMs: 20 });
    let heardAt: number | undefined;
    const started = Date.now();
    // Waits for something (a concurrency slot) that never comes, unless told to give up.
    const seen = reading(runner, (signal) => {
      signal.addEventListener('abort', () => (heardAt = Date.now() - started));
      return new Promise<HookResult>(() => {});
    });
    const call = new StepCall(undefined);
    const outcome = await runner.run('prePromptFetch', prompt, call);
    expect(outcome).toEqual({ stopped: false, headers: undefined });
    expect(seen[0]!.aborted).toBe(true);
    expect(heardAt).toBeGreaterThanOrEqual(15);
    expect(seen[0]!.reason).toMatchObject({ code: ErrorCode.HookTimeout, message: 'did not answer prePromptFetch within 20 ms' });
  });

  it('does not abort the signal of a handler that answers in time', async () => {
    const { runner } = setup({ timeoutMs: 1000 });
    const seen = reading(runner, async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return CONTINUE;
    });
    const call = new StepCall(undefined);
    await runner.run('prePromptFetch', prompt, call);
    expect(seen[0]!.aborted).toBe(false);
    expect(call.aborted).toBe(false);
  });
});
