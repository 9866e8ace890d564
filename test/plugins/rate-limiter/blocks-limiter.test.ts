import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../../plugins/rate-limiter/backend/memory.ts';
import { RedisBackend } from '../../../plugins/rate-limiter/backend/redis.ts';
import type { Backend } from '../../../plugins/rate-limiter/backend/types.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { RateLimiter } from '../../../plugins/rate-limiter/rate-limiter.ts';
import { MessageBus } from '../../../src/bus/bus.ts';
import { ManualClock } from '../../../src/clock.ts';
import type { HookResult, Violation } from '../../../src/hooks/schemas.ts';
import { createLogger, IdentityHasher } from '../../../src/logger.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../../support/redis.ts';
import { CapturedLog } from './helpers.ts';
import { startHarness } from './plugin-harness.ts';

/**
 * Escalating blocks through the whole limiter (policy, backend, presenter, metrics, admin view), on
 * the memory backend and on a real redis-server, with a manual clock: on Redis the store decides on
 * the caller's time here, so that minutes and hours pass at once.
 */
const redisEnabled = redisTestsEnabled();
const T0 = 1_800_000_000_000;
const USER = 'Flooder.Person@example.com';
const TENANT = 'Acme-Corp';
const MESSAGE = 'Blocked for {duration}; back in {retry_after}.';
const ESCALATING = { by_user: '1/10s', block: { after: 2, durations: ['1m', '10m', '1h'], decay_after: '1d', message: MESSAGE } };

let server: RedisProcess | undefined;
let prefixes = 0;
const opened: RateLimiter[] = [];

beforeAll(async () => {
  if (redisEnabled) server = await startRedis();
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
});
afterAll(async () => {
  await server?.stop();
});

type BackendKind = 'memory' | 'redis';
const BACKENDS: BackendKind[] = redisEnabled ? ['memory', 'redis'] : ['memory'];

async function setup(kind: BackendKind, config: Record<string, unknown>) {
  const clock = new ManualClock(T0);
  const log = new CapturedLog();
  const logger = createLogger({ destination: log });
  const metrics = new MetricsRegistry();
  const redisConfig = kind === 'redis' ? { backend: 'redis', redis_url: server!.url, redis_timeout_ms: 2_000, redis_key_prefix: `bl${++prefixes}` } : {};
  const options = RateLimiterOptions.parse({ ...config, ...redisConfig });
  const backend: Backend =
    kind === 'memory' ? new MemoryBackend(options, clock) : await RedisBackend.open(options, { clock, logger, timeSource: 'caller' });
  const limiter = RateLimiter.using(options, { clock, logger, identity: new IdentityHasher('test-salt'), mode: 'enforce', metrics, bus: new MessageBus() }, backend);
  opened.push(limiter);
  let messages = 0;
  const prompt = (channel = 'telegram', user = USER, tenant?: string) =>
    Promise.resolve(limiter.prompt({ channel, user, tenant, callId: `m${++messages}` }));
  const tool = (tool: string, channel = 'telegram', user = USER) => Promise.resolve(limiter.tool({ channel, user, tool }));
  return { limiter, clock, log, metrics, prompt, tool };
}

function refusal(result: HookResult): Violation {
  if (result.continue) throw new Error('expected a refusal, got an admission');
  return result.violation;
}

/** What a chat user sees of a refusal: its kind, and its text unless the channel stays silent. */
function seen(result: HookResult): string {
  if (result.continue) return 'answered';
  const { code, silent, description } = result.violation;
  return silent ? `${code} (silent)` : `${code}: ${description}`;
}

/** Sends `count` messages at the current time; what each got. */
async function flood(prompt: () => Promise<HookResult>, count: number): Promise<string[]> {
  const seenAll: string[] = [];
  for (let i = 0; i < count; i++) seenAll.push(seen(await prompt()));
  return seenAll;
}

function metric(metrics: MetricsRegistry, pattern: RegExp): number {
  const match = metrics.render().match(pattern);
  return match ? Number(match[1]) : 0;
}

describe.each(BACKENDS)('escalating blocks through the limiter (%s backend)', (kind) => {
  it('blocks grow 1m, 10m, 1h and stay there; each is told once on a chat channel, then silence', async () => {
    const { clock, prompt } = await setup(kind, ESCALATING);
    expect(await flood(() => prompt(), 6)).toEqual([
      'answered',
      "rate_limited: You're sending messages a little too fast. Please wait 10 seconds and try again.",
      'rate_limited (silent)',
      'blocked: Blocked for 60 seconds; back in 60 seconds.',
      'blocked (silent)',
      'blocked (silent)',
    ]);
    clock.advance(30_000);
    expect(await flood(() => prompt(), 2)).toEqual(['blocked (silent)', 'blocked (silent)']);
    clock.advance(30_000);
    expect(await flood(() => prompt(), 5)).toEqual([
      'answered',
      "rate_limited: You're sending messages a little too fast. Please wait 10 seconds and try again.",
      'rate_limited (silent)',
      'blocked: Blocked for 10 minutes; back in 10 minutes.',
      'blocked (silent)',
    ]);
    clock.advance(600_000);
    expect((await flood(() => prompt(), 4)).at(-1)).toBe('blocked: Blocked for 60 minutes; back in 60 minutes.');
    clock.advance(3_600_000);
    // The last level repeats.
    expect((await flood(() => prompt(), 4)).at(-1)).toBe('blocked: Blocked for 60 minutes; back in 60 minutes.');
  });

  it("answers every blocked HTTP request with 429 and a Retry-After at the block's end", async () => {
    const { clock, prompt } = await setup(kind, ESCALATING);
    const answers = await flood(() => prompt('http'), 4);
    expect(answers.at(-1)).toBe('blocked: Blocked for 60 seconds; back in 60 seconds.');
    clock.advance(15_500);
    const violation = refusal(await prompt('http'));
    expect(violation).toMatchObject({ code: 'blocked', httpStatus: 429, retryAfter: 45, headers: { 'Retry-After': '45' } });
    expect(violation.details).toEqual({ rule: 'user', level: 1, block: '1m' });
    // The HTTP channel answers every request (it shows the text whatever `silent` says); the text says how long is left.
    expect(violation.description).toBe('Blocked for 60 seconds; back in 45 seconds.');
    clock.advance(44_000);
    expect(refusal(await prompt('http')).retryAfter).toBe(1);
    clock.advance(1_000);
    expect((await prompt('http')).continue).toBe(true);
  });

  it('refuses a blocked user without charging anything: the admin view shows the block and unchanged counts', async () => {
    const { limiter, clock, prompt } = await setup(kind, { by_user: '2/10s', block: { after: 0, durations: ['30s'] } });
    await flood(() => prompt('http'), 3);
    clock.advance(20_000);
    // Blocked whatever the rules would say now: the window has passed.
    for (let i = 0; i < 3; i++) expect(refusal(await prompt('http')).code).toBe('blocked');
    const view = (await limiter.view.inspect({ channel: 'http', user_id: USER })) as Record<string, unknown>;
    expect(view.rules).toEqual([{ rule: 'user', limit: '2/10s', unit: 'requests', used: 0, remaining: 2, reset_after: 0 }]);
    expect(view.blocks).toEqual([{ rule: 'user', blocked: true, level: 1, retry_after: 10, strikes: 0 }]);
    expect(JSON.stringify(view).toLowerCase()).not.toContain('flooder');
    clock.advance(10_000);
    // The whole limit is there: nothing was charged while blocked.
    expect(await flood(() => prompt('http'), 3)).toEqual([
      'answered',
      'answered',
      expect.stringMatching(/^blocked: /),
    ]);
  });

  it("an admin reset frees a blocked user at once and forgets their level", async () => {
    const { limiter, prompt } = await setup(kind, ESCALATING);
    await flood(() => prompt('http'), 4);
    expect(refusal(await prompt('http')).code).toBe('blocked');
    const reset = (await limiter.view.reset({ channel: 'http', user_id: USER })) as { keys_removed: number };
    // The rate key and the block record.
    expect(reset.keys_removed).toBe(2);
    const view = (await limiter.view.inspect({ channel: 'http', user_id: USER })) as Record<string, unknown>;
    expect(view.blocks).toEqual([{ rule: 'user', blocked: false, level: 0, retry_after: 0, strikes: 0 }]);
    expect(await flood(() => prompt('http'), 4)).toEqual([
      'answered',
      expect.stringMatching(/^rate_limited/),
      expect.stringMatching(/^rate_limited/),
      // Level 1 again, not 2.
      'blocked: Blocked for 60 seconds; back in 60 seconds.',
    ]);
  });

  it('counts blocks started by level, blocked decisions, and the blocks this process holds', async () => {
    const { clock, metrics, prompt } = await setup(kind, ESCALATING);
    await flood(() => prompt(), 5);
    await flood(() => prompt('http', 'someone-else'), 4);
    clock.advance(60_000);
    await flood(() => prompt(), 4);
    const text = metrics.render();
    expect(metric(metrics, /^floodgate_ratelimit_blocks_started_total\{rule="user",level="1"\} (\d+)$/m)).toBe(2);
    expect(metric(metrics, /^floodgate_ratelimit_blocks_started_total\{rule="user",level="2"\} (\d+)$/m)).toBe(1);
    // Every refusal in a block is a decision of its own: 2 + 1 + 1 blocked answers.
    expect(metric(metrics, /^floodgate_ratelimit_decisions_total\{hook="prePromptFetch",outcome="blocked",rule="user"\} (\d+)$/m)).toBe(4);
    // In memory the block in force (the other one has just ended) is held here; on Redis, none is.
    expect(metric(metrics, /^floodgate_ratelimit_blocks (\d+)$/m)).toBe(kind === 'memory' ? 1 : 0);
    expect(text).toMatch(/^floodgate_ratelimit_blocks \d+$/m);
    clock.advance(600_000);
    expect(metric(metrics, /^floodgate_ratelimit_blocks (\d+)$/m)).toBe(0);
    expect(text.toLowerCase()).not.toContain('flooder');
  });

  it("logs each block once, naming the subject by its hash only", async () => {
    const { log, prompt } = await setup(kind, ESCALATING);
    await flood(() => prompt(), 20);
    const lines = log.entries.filter((entry) => entry.msg === 'kept sending while refused; blocked');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ rule: 'user', level: 1, block_s: 60, subject: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(log.raw.join('\n').toLowerCase()).not.toContain('flooder');
  });

  it("refuses a blocked user's tool calls, and counts refused tool calls towards the user's block", async () => {
    const { prompt, tool } = await setup(kind, { by_user: '5/m', by_tool: { search: '1/m' }, block: { after: 1, durations: ['1m'] } });
    expect((await tool('search')).continue).toBe(true);
    expect(refusal(await tool('search')).code).toBe('rate_limited');
    // The second refused search starts the user's block: their messages are refused too.
    expect(seen(await tool('search'))).toMatch(/^blocked: /);
    expect(seen(await prompt())).toBe('blocked (silent)');
    expect(seen(await tool('echo'))).toBe('blocked (silent)');
    // Another user is not affected.
    expect((await prompt('telegram', 'bystander')).continue).toBe(true);
  });

  it("blocks a whole tenant that keeps sending over its limit; each member is told once", async () => {
    const { prompt } = await setup(kind, {
      by_user: '10/m',
      by_tenant: '2/m',
      block: { after: 1, durations: ['5m'], subjects: ['user', 'tenant'], message: MESSAGE },
    });
    const member = (name: string) => () => prompt('discord', name, TENANT);
    expect(await flood(member('ann'), 2)).toEqual(['answered', 'answered']);
    expect(seen(await member('ben')())).toMatch(/^rate_limited: /);
    // The tenant's second refusal starts its block: ben is told.
    expect(seen(await member('ben')())).toBe('blocked: Blocked for 5 minutes; back in 5 minutes.');
    expect(seen(await member('ben')())).toBe('blocked (silent)');
    // Ann never saw a refusal: she is told once too, then silence.
    expect(seen(await member('ann')())).toBe('blocked: Blocked for 5 minutes; back in 5 minutes.');
    expect(seen(await member('ann')())).toBe('blocked (silent)');
    // Another tenant is not affected.
    expect((await prompt('discord', 'ann', 'other-team')).continue).toBe(true);
  });

  it("a user's reset leaves the tenant's block; a reset with tenant: true clears it", async () => {
    const { limiter, prompt } = await setup(kind, { by_user: '10/m', by_tenant: '1/m', block: { after: 0, durations: ['5m'], subjects: ['tenant'] } });
    const query = { channel: 'discord', user_id: 'ann', tenant_id: TENANT };
    expect((await prompt('discord', 'ann', TENANT)).continue).toBe(true);
    expect(refusal(await prompt('discord', 'ann', TENANT)).details).toMatchObject({ rule: 'tenant', level: 1 });
    await limiter.view.reset(query);
    expect(refusal(await prompt('discord', 'ann', TENANT)).code).toBe('blocked');
    const view = (await limiter.view.inspect(query)) as { blocks: unknown[] };
    expect(view.blocks).toEqual([{ rule: 'tenant', blocked: true, level: 1, retry_after: 300, strikes: 0 }]);
    // The tenant's count and block record; ann's own count was cleared by the first reset.
    expect(await limiter.view.reset({ ...query, tenant: true })).toEqual({ reset: true, keys_removed: 2 });
    expect((await prompt('discord', 'ben', TENANT)).continue).toBe(true);
  });
});

describe('/limits while blocked', () => {
  it('tells a blocked user how long the pause lasts, and asking costs nothing', async () => {
    const clock = new ManualClock(T0);
    const harness = await startHarness({ by_user: '2/m', block: { after: 0, durations: ['5m'] } }, clock);
    try {
      for (let i = 0; i < 3; i++) await harness.prompt();
      expect(await harness.command('limits')).toBe(
        'Here is what you have left:\n- Paused: you can write again in 5 minutes.\n- Messages: 0 of 2 left per minute, back to 2 in 60 seconds.\nChecking with /limits costs nothing.',
      );
      clock.advance(300_000);
      expect(await harness.command('limits')).not.toContain('Paused');
      expect((await harness.prompt()).continue).toBe(true);
    } finally {
      await harness.teardown();
    }
  });
});

describe('block options', () => {
  function problems(config: unknown): string[] {
    const result = RateLimiterOptions.safeParse(config, { reportInput: true });
    if (result.success) return [];
    return result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  }

  it('defaults to 3 refusals, a day of decay, users only, and the kind reply', () => {
    const options = RateLimiterOptions.parse({ by_user: '30/m', block: { durations: ['1m', '10m', '1h'] } });
    expect(options.block).toEqual({
      policy: { after: 3, durationsMs: [60_000, 600_000, 3_600_000], decayMs: 86_400_000 },
      subjects: ['user'],
      message: "You've kept sending messages after being asked to slow down, so I'm pausing our chat for a while. Please write again in {retry_after}.",
    });
  });

  it('refuses durations that shrink, a tenant block without a tenant rule, and blank lists', () => {
    expect(problems({ by_user: '30/m', block: { durations: ['10m', '1m'] } })).toEqual(['block.durations.1: each block must last at least as long as the one before it']);
    expect(problems({ by_user: '30/m', block: { durations: ['1m'], subjects: ['tenant'] } })).toEqual([
      'block.subjects: blocking "tenant" needs by_tenant (its refusals are what start the blocks)',
    ]);
    expect(problems({ by_user: '30/m', block: { durations: [], subjects: [] } })).toHaveLength(2);
    expect(problems({ by_user: '30/m', block: { durations: ['0s', '400d'], after: -1 } })).toHaveLength(3);
  });
});
