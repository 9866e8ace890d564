import { describe, expect, it } from 'vitest';
import {
  closeSharedLimiter,
  configKey,
  dispatchRequester,
  estimateTokens,
  LOG_PREFIX,
  OpenClawRateLimiter,
  sharedLimiter,
  toolRequester,
  type DispatchContext,
  type DispatchEvent,
  type HostLogger,
} from '../../../plugins/rate-limiter/openclaw/adapter.ts';
import { OpenClawConfigError, parseOpenClawOptions } from '../../../plugins/rate-limiter/openclaw/options.ts';
import { RateLimiter } from '../../../plugins/rate-limiter/rate-limiter.ts';
import { ManualClock } from '../../../src/clock.ts';
import { IdentityHasher } from '../../../src/logger.ts';

/**
 * The OpenClaw adapter without OpenClaw: its events in the shapes OpenClaw 2026.9.6 sends them,
 * the answers it gives back, on_error and timeouts, and the process-wide registry.
 */

const T0 = 1_700_000_000_000;
const FLOODER = '7310598823';
const BYSTANDER = '6184402975';
const GROUP = '-1001938475620';

class Lines implements HostLogger {
  readonly all: { level: string; text: string }[] = [];
  debug = (text: string) => void this.all.push({ level: 'debug', text });
  info = (text: string) => void this.all.push({ level: 'info', text });
  warn = (text: string) => void this.all.push({ level: 'warn', text });
  error = (text: string) => void this.all.push({ level: 'error', text });
  text(): string {
    return this.all.map((l) => l.text).join('\n');
  }
}

/** A message as OpenClaw's Telegram channel hands it to before_dispatch. */
function dm(senderId: string, content = 'hello', messageId = '1'): [DispatchEvent, DispatchContext] {
  return [
    { messageId, content, body: content, channel: 'telegram', sessionKey: `agent:main:telegram:direct:${senderId}`, senderId, isGroup: false },
    { messageId, channelId: 'telegram', accountId: 'default', conversationId: senderId, sessionKey: `agent:main:telegram:direct:${senderId}`, senderId },
  ];
}

function groupMessage(senderId: string, content = 'hi all'): [DispatchEvent, DispatchContext] {
  const sessionKey = `agent:main:telegram:group:${GROUP}`;
  return [
    { messageId: '9', content, channel: 'telegram', sessionKey, senderId, isGroup: true },
    { messageId: '9', channelId: 'telegram', accountId: 'default', conversationId: GROUP, sessionKey, senderId },
  ];
}

function toolContext(senderId: string, sessionKey = `agent:main:telegram:direct:${senderId}`) {
  return { sessionKey, channelId: 'telegram', requester: { channel: 'telegram', accountId: 'default', senderId } };
}

interface Made {
  adapter: OpenClawRateLimiter;
  clock: ManualClock;
  lines: Lines;
}

function make(config: Record<string, unknown>, open?: (limiter: RateLimiter) => RateLimiter | Promise<RateLimiter>): Made {
  const clock = new ManualClock(T0);
  const lines = new Lines();
  const options = parseOpenClawOptions(config);
  const adapter = new OpenClawRateLimiter(options, {
    logger: lines,
    clock,
    open: async (logger) => {
      const limiter = await RateLimiter.open(options.limiter, { clock, logger, identity: new IdentityHasher('test'), mode: options.host.mode });
      return open ? open(limiter) : limiter;
    },
  });
  return { adapter, clock, lines };
}

describe('events to requests', () => {
  it('keys a message by channel and account + sender, and a group message by its conversation as tenant', () => {
    expect(dispatchRequester(...dm(FLOODER))).toEqual({ channel: 'telegram', user: `default:${FLOODER}`, tenant: undefined });
    expect(dispatchRequester(...groupMessage(FLOODER))).toEqual({ channel: 'telegram', user: `default:${FLOODER}`, tenant: `telegram:default:${GROUP}` });
    const [event, ctx] = dm(FLOODER);
    expect(dispatchRequester({ ...event, senderId: undefined }, { ...ctx, senderId: undefined }).user).toBe('');
    expect(dispatchRequester(event, { ...ctx, accountId: 'second-bot' }).user).toBe(`second-bot:${FLOODER}`);
  });

  it("keys a tool call by its run's requester, and its session's group", () => {
    expect(toolRequester(toolContext(FLOODER), undefined)).toEqual({ channel: 'telegram', user: `default:${FLOODER}`, tenant: undefined });
    expect(toolRequester({ sessionKey: 'cron:1' }, undefined)).toEqual({ channel: 'openclaw', user: '', tenant: undefined });
    expect(toolRequester(toolContext(FLOODER), 'telegram:default:g')).toMatchObject({ tenant: 'telegram:default:g' });
  });

  it("estimates a message's tokens as Floodgate's agent does", () => {
    expect(estimateTokens('')).toBe(2);
    expect(estimateTokens('x'.repeat(40))).toBe(20);
  });
});

describe('answers to OpenClaw results', () => {
  it('lets messages through, then answers the flooder once per cooldown and silently after', async () => {
    const { adapter, clock } = make({ by_user: '2/m' });
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    const refused = await adapter.beforeDispatch(...dm(FLOODER));
    expect(refused).toEqual({ handled: true, text: expect.stringMatching(/^You're sending messages a little too fast\. Please wait \d+ seconds and try again\.$/) });
    expect(refused?.text).not.toContain(FLOODER);
    // Within the cooldown: claimed (the model skipped) with no text, so nothing is sent.
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toEqual({ handled: true });
    expect(await adapter.beforeDispatch(...dm(BYSTANDER))).toBeUndefined();
    clock.advance(60_000);
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
  });

  it('blocks a tool over its by_tool limit with a reason the model can act on', async () => {
    const { adapter } = make({ by_user: '30/m', by_tool: { exec: '1/m' } });
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: { command: 'echo' } }, toolContext(FLOODER))).toBeUndefined();
    const blocked = await adapter.beforeToolCall({ toolName: 'exec', params: { command: 'echo' } }, toolContext(FLOODER));
    expect(blocked).toEqual({
      block: true,
      blockReason: expect.stringMatching(/^Rate limited: the exec tool call was not run, because it is over this tool's per-user limit \(1\/m\)\. Retry in \d+ seconds, not before\.$/),
    });
    expect(blocked?.blockReason).not.toContain(FLOODER);
    // Another tool, another sender: their own counts.
    expect(await adapter.beforeToolCall({ toolName: 'read', params: {} }, toolContext(FLOODER))).toBeUndefined();
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(BYSTANDER))).toBeUndefined();
  });

  it("counts a group's members together under by_tenant, their tool calls too", async () => {
    const { adapter } = make({ by_tenant: '3/m' });
    expect(await adapter.beforeDispatch(...groupMessage('1'))).toBeUndefined();
    expect(await adapter.beforeDispatch(...groupMessage('2'))).toBeUndefined();
    // The run the group's message started calls a tool: the session says which group it is.
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext('2', `agent:main:telegram:group:${GROUP}`))).toBeUndefined();
    expect(await adapter.beforeDispatch(...groupMessage('3'))).toMatchObject({ handled: true });
    // The same people in private chats are no tenant's.
    expect(await adapter.beforeDispatch(...dm('3'))).toBeUndefined();
  });

  it('counts a person as one user in private and group chats when no tenant rule is set', async () => {
    const { adapter } = make({ by_user: '2/m' });
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    expect(await adapter.beforeDispatch(...groupMessage(FLOODER))).toBeUndefined();
    expect(await adapter.beforeDispatch(...groupMessage(FLOODER))).toMatchObject({ handled: true });
  });

  it('only logs refusals when permissive', async () => {
    const { adapter, lines } = make({ by_user: '1/m', by_tool: { exec: '1/m' }, mode: 'permissive' });
    await adapter.beforeDispatch(...dm(FLOODER));
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(FLOODER));
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(FLOODER))).toBeUndefined();
    expect(lines.text()).toContain('request allowed (permissive)');
  });

  it('logs with the plugin prefix, hashes for users, and never an id', async () => {
    const { adapter, lines } = make({ by_user: '1/m' });
    adapter.registered('full');
    adapter.registered('discovery');
    await adapter.beforeDispatch(...dm(FLOODER));
    await adapter.beforeDispatch(...dm(FLOODER));
    expect(lines.all.length).toBeGreaterThanOrEqual(4);
    for (const line of lines.all) {
      expect(line.text.startsWith(LOG_PREFIX)).toBe(true);
      expect(line.text).not.toContain(FLOODER);
    }
    expect(lines.text()).toContain('"registration_mode":"discovery","registrations":2');
    expect(lines.all.filter((l) => l.text.includes('rate limiter ready'))).toHaveLength(1);
    expect(lines.all.find((l) => l.text.includes('request refused'))?.level).toBe('warn');
  });
});

describe('on_error', () => {
  const broken = (limiter: RateLimiter): RateLimiter =>
    Object.assign(Object.create(limiter) as RateLimiter, {
      prompt: () => {
        throw new Error('store exploded');
      },
      tool: () => Promise.reject(new Error('store exploded')),
    });
  const hanging = (limiter: RateLimiter): RateLimiter =>
    Object.assign(Object.create(limiter) as RateLimiter, { prompt: () => new Promise(() => {}), tool: () => new Promise(() => {}) });

  it('fail_open (the default) lets messages and tool calls through, and says so once', async () => {
    const { adapter, lines } = make({ by_user: '1/m' }, broken);
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(FLOODER))).toBeUndefined();
    const errors = lines.all.filter((l) => l.level === 'error');
    expect(errors.map((l) => l.text)).toEqual([
      expect.stringContaining('rate limiter failed; let through (fail_open) {"hook":"before_dispatch","on_error":"fail_open","err_message":"store exploded"}'),
      expect.stringContaining('"hook":"before_tool_call"'),
    ]);
  });

  it('fail_closed refuses with the unavailable reply, and blocks tools with a reason', async () => {
    const { adapter } = make({ by_user: '1/m', on_error: 'fail_closed', unavailable_message: 'Back in a moment.' }, broken);
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toEqual({ handled: true, text: 'Back in a moment.' });
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(FLOODER))).toEqual({
      block: true,
      blockReason: 'Rate limiter unavailable: the tool call was not run. Try again shortly.',
    });
  });

  it('a permissive limiter never blocks, not even failing closed', async () => {
    const { adapter } = make({ by_user: '1/m', on_error: 'fail_closed', mode: 'permissive' }, broken);
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
  });

  it('answers within timeout_ms when the limiter does not (before OpenClaw fails the tool call at 15 s)', async () => {
    const { adapter, lines } = make({ by_user: '1/m', on_error: 'fail_closed', timeout_ms: 20 }, hanging);
    const started = Date.now();
    expect(await adapter.beforeToolCall({ toolName: 'exec', params: {} }, toolContext(FLOODER))).toMatchObject({ block: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(lines.text()).toContain('no decision within 20 ms');
  });

  it('a limiter that fails to open is tried again on the next event', async () => {
    let attempts = 0;
    const { adapter } = make({ by_user: '1/m', on_error: 'fail_closed' }, (limiter) => {
      attempts += 1;
      if (attempts === 1) throw new Error('redis unreachable');
      return limiter;
    });
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toMatchObject({ handled: true });
    expect(await adapter.beforeDispatch(...dm(FLOODER))).toBeUndefined();
    expect(attempts).toBe(2);
  });
});

describe('the config', () => {
  it("is the limiter's options, as in Floodgate's config, with the host's settings beside them", () => {
    const parsed = parseOpenClawOptions({ by_user: ['30/m', '500/h'], on_error: 'fail_closed', backend: 'memory' });
    expect(parsed.host).toEqual({ mode: 'enforce', on_error: 'fail_closed', timeout_ms: 1000 });
    expect(parsed.limiter.by_user?.rates.map((r) => r.source)).toEqual(['30/m', '500/h']);
    expect(parsed.limiter.algorithm).toBe('sliding_window');
  });

  it('says every problem at once', () => {
    expect(() => parseOpenClawOptions({ by_user: '30/fortnight', on_error: 'maybe', by_usr: '1/m' })).toThrow(OpenClawConfigError);
    try {
      parseOpenClawOptions({ by_user: '30/fortnight', on_error: 'maybe' });
    } catch (error) {
      expect((error as Error).message).toMatch(/on_error: .*\n.*by_user: .*unknown unit "fortnight"/s);
    }
    expect(() => parseOpenClawOptions({})).toThrow(/no limit configured/);
    expect(() => parseOpenClawOptions({ by_user: '30/m', by_address: { rate: '100/m' } })).toThrow(/by_address: not available in OpenClaw/);
  });

  it('refuses max_concurrent, which OpenClaw gives a plugin no way to honour', () => {
    expect(() => parseOpenClawOptions({ by_user: { rate: '30/m', max_concurrent: 2 } })).toThrow(/by_user\.max_concurrent: not available in OpenClaw/);
  });
});

describe('the process-wide registry', () => {
  it('gives every registration of one config the same limiter, and a new one after the gateway stops', async () => {
    const lines = new Lines();
    const first = sharedLimiter({ by_user: '5/m', by_tool: { exec: '1/m' } }, lines);
    const second = sharedLimiter({ by_tool: { exec: '1/m' }, by_user: '5/m' }, lines);
    const other = sharedLimiter({ by_user: '6/m' }, lines);
    expect(second).toBe(first);
    expect(other).not.toBe(first);
    // The module loaded again holds its own registry binding, but the registry is global.
    const registry = (globalThis as Record<symbol, Map<string, unknown>>)[Symbol.for('floodgate.openclaw.rate-limiters')];
    expect(registry?.get(configKey({ by_user: '5/m', by_tool: { exec: '1/m' } }))).toBe(first);
    await closeSharedLimiter({ by_tool: { exec: '1/m' }, by_user: '5/m' });
    await closeSharedLimiter({ by_user: '6/m' });
    expect(sharedLimiter({ by_user: '5/m', by_tool: { exec: '1/m' } }, lines)).not.toBe(first);
    await closeSharedLimiter({ by_user: '5/m', by_tool: { exec: '1/m' } });
  });

  it('throws for an invalid config, before any limiter exists', () => {
    expect(() => sharedLimiter({ by_user: 'lots' }, new Lines())).toThrow(OpenClawConfigError);
  });
});
