import { describe, expect, it } from 'vitest';
import type { Backend } from '../../../plugins/rate-limiter/backend/types.ts';
import { MemoryBackend } from '../../../plugins/rate-limiter/backend/memory.ts';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { RateLimiter } from '../../../plugins/rate-limiter/rate-limiter.ts';
import type { Decision, RateStore, RuleCheck } from '../../../plugins/rate-limiter/store/types.ts';
import { MessageBus } from '../../../src/bus/bus.ts';
import { ManualClock } from '../../../src/clock.ts';
import { HookRunner } from '../../../src/hooks/runner.ts';
import type { HookContext, HookResult, Violation } from '../../../src/hooks/schemas.ts';
import { createLogger, IdentityHasher } from '../../../src/logger.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { CapturedLog } from './helpers.ts';

const USER = 'alice@example.com';
const TENANT = 'acme-corp';
/** A round epoch time, so fixed windows start exactly here. */
const T0 = 1_700_000_000_000;

function context(overrides: Partial<HookContext> = {}): HookContext {
  return { message_id: 'm-1', channel: 'http', user_id: USER, tenant_id: TENANT, conversation_id: 'c-1', ...overrides };
}

interface Setup {
  config: Record<string, unknown>;
  mode?: 'enforce' | 'permissive';
  store?: RateStore;
}

/** A backend over any rate store (a test's fake one): slots are always free. */
function storeBackend(store: RateStore): Backend {
  return {
    decide: (checks, now, next) => {
      const decision = store.decide(checks, now);
      return decision instanceof Promise ? decision.then(next) : next(decision);
    },
    acquire: (_request, next) => next({ ok: true, release: () => undefined }),
    adjust: (decision, checks, deltas, now) => void store.adjust(decision, checks, deltas, now),
    peek: async () => ({ results: [], local: false }),
    inUse: async (keys) => keys.map(() => 0),
    forget: async () => 0,
    get keys() {
      return store.size;
    },
    blocks: 0,
    breaker: undefined,
    close: () => store.close(),
  };
}

/** Decisions counted in /metrics, by outcome. */
function decisionCounts(metrics: MetricsRegistry): Record<string, number> {
  const counts: Record<string, number> = { admitted: 0, refused: 0, unavailable: 0 };
  for (const match of metrics.render().matchAll(/^floodgate_ratelimit_decisions_total\{[^}]*outcome="(\w+)"[^}]*\} (\d+)$/gm)) {
    counts[match[1]!] = (counts[match[1]!] ?? 0) + Number(match[2]);
  }
  return counts;
}

function setup({ config, mode = 'enforce', store }: Setup) {
  const options = RateLimiterOptions.parse(config);
  const clock = new ManualClock(T0);
  const log = new CapturedLog();
  const metrics = new MetricsRegistry();
  const backend = store ? storeBackend(store) : new MemoryBackend(options, clock);
  const memory = backend instanceof MemoryBackend ? backend.store : undefined;
  const logger = createLogger({ destination: log });
  const host = { clock, logger, identity: new IdentityHasher('test-salt'), mode, metrics, bus: new MessageBus() };
  const limiter = RateLimiter.using(options, host, backend);
  const subject = (ctx: HookContext) => ({ channel: ctx.channel, user: ctx.user_id, tenant: ctx.tenant_id });
  const api = {
    policy: () => limiter.engine.policy,
    onPrompt: (ctx: HookContext, call: { estimatedTokens?: number } = {}) =>
      limiter.prompt({ ...subject(ctx), callId: `${ctx.channel}\0${ctx.message_id}\0chat`, estimatedTokens: call.estimatedTokens }),
    onPromptDone: (ctx: HookContext, end: { outcome: 'completed' | 'failed' | 'cancelled'; actualTokens?: number }) =>
      limiter.promptEnded(`${ctx.channel}\0${ctx.message_id}\0chat`, end),
    onTool: (ctx: HookContext, tool: string) => limiter.tool({ ...subject(ctx), tool }),
    stats: () => ({ ...decisionCounts(metrics), keys: backend.keys }),
  };
  return { limiter: api, rateLimiter: limiter, clock, log, memory: memory!, metrics, logger };
}

function violationOf(result: HookResult): Violation {
  if (result.continue) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result.violation;
}

/** A store that counts decide() calls and does whatever `impl` does. */
class FakeStore implements RateStore {
  calls = 0;
  constructor(private readonly impl: (checks: readonly RuleCheck[], now: number) => Decision | Promise<Decision>) {}
  get size(): number {
    return 0;
  }
  decide(checks: readonly RuleCheck[], now: number): Decision | Promise<Decision> {
    this.calls++;
    return this.impl(checks, now);
  }
  adjust(): void {}
  async close(): Promise<void> {}
}

describe('RateLimiter: refusing a flood', () => {
  it('admits up to the limit with headers, then refuses with a friendly 429 naming the wait', async () => {
    const { limiter } = setup({ config: { by_user: '3/m' } });
    for (let i = 0; i < 3; i++) {
      const ok = await limiter.onPrompt(context());
      expect(ok.continue).toBe(true);
      if (ok.continue) expect(ok.headers?.['X-RateLimit-Remaining']).toBe(String(2 - i));
    }
    const violation = violationOf(await limiter.onPrompt(context()));
    expect(violation).toMatchObject({ code: 'rate_limited', reason: 'Rate limit exceeded', httpStatus: 429, silent: false });
    expect(violation.description).toBe("You're sending messages a little too fast. Please wait 60 seconds and try again.");
    expect(violation.details).toEqual({ rule: 'user', window: '1m', limit: '3/m' });
    expect(violation.retryAfter).toBe(60);
    expect(violation.headers['Retry-After']).toBe('60');
    expect(violation.headers['X-RateLimit-Remaining']).toBe('0');
    expect(limiter.stats()).toEqual({ admitted: 3, refused: 1, unavailable: 0, keys: 1 });
  });

  it('puts the binding rule in a custom message: the tenant limit when the tenant is the one exhausted', async () => {
    const { limiter } = setup({ config: { by_user: '100/m', by_tenant: '2/h', message: 'Your team may send {limit}; wait {retry_after}.' } });
    expect((await limiter.onPrompt(context({ user_id: 'bob' }))).continue).toBe(true);
    expect((await limiter.onPrompt(context({ user_id: 'carol', channel: 'cli' }))).continue).toBe(true);
    const violation = violationOf(await limiter.onPrompt(context()));
    expect(violation.description).toBe('Your team may send 2 per hour; wait 60 minutes.');
    expect(violation.details).toEqual({ rule: 'tenant', window: '1h', limit: '2/h' });
    expect(violation.retryAfter).toBe(3600);
  });

  it('limits tool calls by their by_tool rate, leaving other tools alone', async () => {
    const { limiter } = setup({ config: { by_tool: { search: '1/m' } } });
    expect((await limiter.onTool(context(), 'search')).continue).toBe(true);
    const violation = violationOf(await limiter.onTool(context(), ' SEARCH '));
    expect(violation.details).toEqual({ rule: 'tool', window: '1m', limit: '1/m' });
    expect(violation.retryAfter).toBe(60);
    // No by_user: a tool without its own rate is not limited per user.
    expect(await limiter.onTool(context(), 'translate')).toEqual({ continue: true });
  });

  it('never puts the user or tenant id in a result or a log line', async () => {
    const { limiter, log, clock } = setup({ config: { by_user: '2/m', by_tenant: '3/m', by_tool: { search: '1/m' } } });
    const results: HookResult[] = [];
    for (let i = 0; i < 20; i++) {
      results.push(await limiter.onPrompt(context()));
      results.push(await limiter.onTool(context(), 'search'));
      results.push(await limiter.onTool(context({ user_id: 'ALICE@Example.com ' }), 'translate'));
      clock.advance(1_000);
    }
    // Both admissions and refusals happened, and were logged.
    expect(results.some((r) => r.continue)).toBe(true);
    expect(results.some((r) => !r.continue)).toBe(true);
    expect(log.at('warn').length).toBeGreaterThan(0);

    for (const text of [JSON.stringify(results), ...log.raw]) {
      expect(text.toLowerCase()).not.toContain(USER);
      expect(text.toLowerCase()).not.toContain(TENANT);
      expect(text).not.toContain('alice');
      expect(text).not.toContain('acme');
    }
  });

  it.each(['sliding_window', 'fixed_window', 'token_bucket'])(
    '%s: Retry-After is honoured: after that many seconds the user is admitted again, not a second earlier',
    async (algorithm) => {
      const { limiter, clock } = setup({ config: { by_user: '5/10s', algorithm } });
      let refused: Violation | undefined;
      for (let i = 0; i < 10 && refused === undefined; i++) {
        const result = await limiter.onPrompt(context());
        if (!result.continue) refused = result.violation;
      }
      expect(refused).toBeDefined();
      const retryAfter = Number(refused!.headers['Retry-After']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(refused!.retryAfter).toBe(retryAfter);
      clock.advance(retryAfter * 1000 - 1000);
      expect((await limiter.onPrompt(context())).continue).toBe(false);
      clock.advance(1000);
      expect((await limiter.onPrompt(context())).continue).toBe(true);
    },
  );
});

describe('RateLimiter: one reply per cooldown', () => {
  it('tells the user once, stays quiet until the retry time has passed, then tells them again', async () => {
    const { limiter, clock } = setup({ config: { by_user: '3/m' } });
    await limiter.onPrompt(context()); // t = 0 s
    clock.advance(30_000);
    await limiter.onPrompt(context()); // t = 30 s
    clock.advance(20_000);
    await limiter.onPrompt(context()); // t = 50 s
    clock.advance(5_000);
    const first = violationOf(await limiter.onPrompt(context())); // t = 55 s, wait until 60 s
    expect(first.silent).toBe(false);
    expect(first.retryAfter).toBe(5);
    clock.advance(3_000);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(true); // 58 s: still in the cooldown
    clock.advance(2_000);
    expect((await limiter.onPrompt(context())).continue).toBe(true); // 60 s: the 0 s request left
    clock.advance(1_000);
    const again = violationOf(await limiter.onPrompt(context())); // 61 s: cooldown over
    expect(again.silent).toBe(false);
    expect(again.retryAfter).toBe(29);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(true);
  });

  it('respects reply_cooldown', async () => {
    const { limiter, clock } = setup({ config: { by_user: '1/h', reply_cooldown: 10 } });
    await limiter.onPrompt(context());
    const quietness: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      quietness.push(violationOf(await limiter.onPrompt(context())).silent ?? false);
      clock.advance(5_000);
    }
    // Told at 0 s, 10 s, 20 s, 30 s; quiet in between — though the retry time is nearly an hour.
    expect(quietness).toEqual([false, true, false, true, false, true, false]);
  });

  it('reply_cooldown 0 answers every refusal', async () => {
    const { limiter } = setup({ config: { by_user: '1/h', reply_cooldown: 0 } });
    await limiter.onPrompt(context());
    for (let i = 0; i < 5; i++) expect(violationOf(await limiter.onPrompt(context())).silent).toBe(false);
  });

  it('keeps each user’s cooldown separate', async () => {
    const { limiter } = setup({ config: { by_user: '1/h' } });
    await limiter.onPrompt(context());
    await limiter.onPrompt(context({ user_id: 'bob' }));
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(false);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(true);
    expect(violationOf(await limiter.onPrompt(context({ user_id: 'bob' }))).silent).toBe(false);
  });
});

describe('RateLimiter: logging', () => {
  it('logs one warning per key per 10 s for a flood of 100 refused requests, then another after 10 s', async () => {
    const { limiter, log, clock } = setup({ config: { by_user: '3/m' } });
    for (let i = 0; i < 3; i++) await limiter.onPrompt(context());
    let refused = 0;
    for (let i = 0; i < 100; i++) {
      if (!(await limiter.onPrompt(context())).continue) refused++;
      clock.advance(99); // 100 requests within 9.9 s
    }
    expect(refused).toBe(100);
    const warnings = log.at('warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      msg: 'rate limit exceeded; request refused',
      hook: 'prePromptFetch',
      rule: 'user',
      limit: '3/m',
      retry_after_s: 60,
      mode: 'enforce',
    });
    expect(warnings[0]!.subject).toMatch(/^[0-9a-f]{16}$/);

    clock.set(T0 + 10_000);
    expect((await limiter.onPrompt(context())).continue).toBe(false);
    expect(log.at('warn')).toHaveLength(2);
    // The same flooder is recognisable across lines by the hashed subject.
    expect(log.at('warn')[1]!.subject).toBe(warnings[0]!.subject);

    // Another user's refusal is logged on its own.
    for (let i = 0; i < 4; i++) await limiter.onPrompt(context({ user_id: 'bob' }));
    const third = log.at('warn');
    expect(third).toHaveLength(3);
    expect(third[2]!.subject).not.toBe(warnings[0]!.subject);
  });

  it('in permissive mode says the request was allowed', async () => {
    const { limiter, log } = setup({ config: { by_user: '1/m' }, mode: 'permissive' });
    await limiter.onPrompt(context());
    const violation = violationOf(await limiter.onPrompt(context()));
    expect(violation.code).toBe('rate_limited');
    const [warning, ...rest] = log.at('warn');
    expect(rest).toEqual([]);
    expect(warning).toMatchObject({ mode: 'permissive', msg: 'rate limit exceeded; request allowed (permissive)' });
  });
});

describe('RateLimiter: a failing limiter reaches the host, whose on_error decides', () => {
  /** The limiter's prompt hook in a real hook runner, as the plugin host registers it. */
  function hosted(onError: 'fail_open' | 'fail_closed', store: RateStore) {
    const h = setup({ config: { by_user: '1/m' }, store });
    const runner = new HookRunner(h.logger, h.clock, 1_000);
    runner.register({ plugin: 'rate_limiter', hook: 'prePromptFetch', priority: 10, mode: 'enforce', onError, handler: (p) => h.limiter.onPrompt(p.context) });
    const run = () => runner.run('prePromptFetch', { prompt_id: 'chat', text: 'hi', context: context() });
    return { ...h, run };
  }

  it('fail_open: lets requests through when the store throws, logging it at most once per 10 s', async () => {
    const store = new FakeStore(() => {
      throw new Error('connection refused');
    });
    const { run, log, clock } = hosted('fail_open', store);
    for (let i = 0; i < 50; i++) {
      expect(await run()).toEqual({ stopped: false, headers: undefined });
      clock.advance(100);
    }
    expect(store.calls).toBe(50);
    const errors = log.at('error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ plugin: 'rate_limiter', hook: 'prePromptFetch', on_error: 'fail_open', err_message: 'connection refused' });
    clock.advance(10_000);
    await run();
    expect(log.at('error')).toHaveLength(2);
  });

  it('fail_closed: refuses with 503 when the limiter itself throws, and never names the user', async () => {
    const store = new FakeStore(() => Promise.reject(new Error('bug in the store')));
    const { run, log } = hosted('fail_closed', store);
    const outcome = await run();
    expect(outcome).toMatchObject({ stopped: true, plugin: 'rate_limiter', violation: { code: 'plugin_unavailable', httpStatus: 503 } });
    expect(store.calls).toBe(1);
    expect(log.at('error')[0]).toMatchObject({ on_error: 'fail_closed', err_message: 'bug in the store' });
    expect(JSON.stringify(outcome) + log.raw.join('')).not.toContain(USER);
  });

  it('does not ask the store when no rule applies', async () => {
    const store = new FakeStore(() => {
      throw new Error('must not be called');
    });
    const { limiter, log } = setup({ config: { by_tenant: '1/m' }, store });
    expect(await limiter.onPrompt(context({ tenant_id: undefined }))).toEqual({ continue: true });
    expect(store.calls).toBe(0);
    expect(log.at('error')).toEqual([]);
  });
});

describe('RateLimiter: asynchronous stores', () => {
  it('decides the same way with a store that answers with promises', async () => {
    const options = RateLimiterOptions.parse({ by_user: '2/m', by_tenant: '100/m' });
    const inner = new MemoryStore(ALGORITHMS[options.algorithm], options.max_keys);
    const store = new FakeStore((checks, now) => Promise.resolve(inner.decide(checks, now)));
    const { limiter, clock } = setup({ config: { by_user: '2/m', by_tenant: '100/m' }, store });

    const first = limiter.onPrompt(context());
    expect(first).toBeInstanceOf(Promise);
    const admitted = await first;
    expect(admitted.continue).toBe(true);
    if (admitted.continue) expect(admitted.headers).toMatchObject({ 'X-RateLimit-Remaining': '1', 'RateLimit-Policy': '"user";q=2;w=60, "tenant";q=100;w=60' });
    expect((await limiter.onPrompt(context())).continue).toBe(true);

    clock.advance(15_000);
    const violation = violationOf(await limiter.onPrompt(context()));
    expect(violation).toMatchObject({ code: 'rate_limited', httpStatus: 429, silent: false });
    expect(violation.details).toEqual({ rule: 'user', window: '1m', limit: '2/m' });
    expect(violation.retryAfter).toBe(45);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(true);
    expect(store.calls).toBe(4);
    expect(limiter.stats()).toMatchObject({ admitted: 2, refused: 2 });

    clock.advance(45_000);
    expect((await limiter.onPrompt(context())).continue).toBe(true);
  });
});

describe('RateLimiter: a store that decides without looking (backend down)', () => {
  it('admits without rate-limit headers when the store admits blind (policy "open")', async () => {
    const store = new FakeStore(() => ({ allowed: true, retryAfterMs: 0, results: [] }));
    const { limiter } = setup({ config: { by_user: '3/m' }, store });
    const result = await limiter.onPrompt(context());
    expect(result).toEqual({ continue: true });
    expect(store.calls).toBe(1);
  });

  it('refuses with a distinct, id-free "temporarily unavailable" 503 (policy "closed"), told once per cooldown', async () => {
    const store = new FakeStore(() => ({ allowed: false, unavailable: true, retryAfterMs: 1000, results: [] }));
    const { limiter, log, clock } = setup({ config: { by_user: '3/m' }, store });
    const first = violationOf(await limiter.onPrompt(context()));
    expect(first).toMatchObject({ code: 'limiter_unavailable', httpStatus: 503, silent: false, retryAfter: 1 });
    // The retry time is the refusal's own field: channels turn it into Retry-After.
    expect(first.headers).toEqual({});
    expect(first.description).toMatch(/try again/i);
    expect(first.description).not.toMatch(/too fast/);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(true);
    clock.advance(1000);
    expect(violationOf(await limiter.onPrompt(context())).silent).toBe(false);
    const everything = JSON.stringify(first) + log.raw.join('\n');
    expect(everything).not.toContain(USER);
    expect(everything).not.toContain(TENANT);
    expect(limiter.stats()).toMatchObject({ unavailable: 3 });
  });
});

describe('RateLimiter: exemptions', () => {
  it('never limits an exempt user (matched after normalisation) nor anyone in an exempt tenant; others still are', async () => {
    const { limiter } = setup({ config: { by_user: '1/m', exempt_users: [' Alice@Example.com '], exempt_tenants: ['VIP-Corp'] } });
    for (let i = 0; i < 5; i++) {
      expect((await limiter.onPrompt(context({ user_id: 'ALICE@example.com', tenant_id: undefined }))).continue).toBe(true);
      expect((await limiter.onTool(context({ user_id: 'bob', tenant_id: 'vip-corp' }), 'search')).continue).toBe(true);
      expect((await limiter.onPrompt(context({ user_id: 'bob', tenant_id: ' VIP-CORP' }))).continue).toBe(true);
    }
    expect((await limiter.onPrompt(context({ user_id: 'carol', tenant_id: 'other' }))).continue).toBe(true);
    expect((await limiter.onPrompt(context({ user_id: 'carol', tenant_id: 'other' }))).continue).toBe(false);
    // Exempt requests touch no state at all.
    expect(limiter.stats()).toMatchObject({ admitted: 1, refused: 1, keys: 1 });
  });
});

describe('RateLimiter: several windows per rule', () => {
  it('admits only while every window admits, and names the window that refused', async () => {
    const { limiter, clock } = setup({ config: { by_user: ['2/s', '3/m'] } });
    expect((await limiter.onPrompt(context())).continue).toBe(true);
    expect((await limiter.onPrompt(context())).continue).toBe(true);
    const perSecond = violationOf(await limiter.onPrompt(context()));
    expect(perSecond.details).toMatchObject({ rule: 'user', window: '1s', limit: '2/s' });
    expect(perSecond.retryAfter).toBe(1);
    expect(perSecond.headers['RateLimit-Policy']).toBe('"user-1s";q=2;w=1, "user-1m";q=3;w=60');
    clock.advance(1000);
    expect((await limiter.onPrompt(context())).continue).toBe(true);
    clock.advance(1000);
    // The second window is full now (3 in the minute), though the per-second one would admit.
    const perMinute = violationOf(await limiter.onPrompt(context()));
    expect(perMinute.details).toMatchObject({ rule: 'user', window: '1m', limit: '3/m' });
    expect(perMinute.retryAfter).toBe(58);
    expect(perMinute.description).toContain('58 seconds');
    // The refusal charged neither window.
    clock.advance(58_000);
    expect((await limiter.onPrompt(context())).continue).toBe(true);
  });

  it('refuses a list with a bad rate or two rates on one window, naming the entry', () => {
    const bad = RateLimiterOptions.safeParse({ by_user: ['30/m', 'x/h', '60/m'] });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['by_user.1', expect.stringContaining('"x/h" is not a rate')],
      ['by_user.2', 'another rate in this list has the same window'],
    ]);
  });
});

describe('RateLimiter: token commits run on the limiter clock', () => {
  it('a commit lands in the window the estimate was charged to, by the injected clock', async () => {
    const { limiter, clock, memory } = setup({ config: { by_user: { tokens: '100/m' } } });
    const call = { estimatedTokens: 50 };
    expect((await limiter.onPrompt(context({ message_id: 'm-1' }), call)).continue).toBe(true);
    clock.advance(30_000);
    limiter.onPromptDone(context({ message_id: 'm-1' }), { outcome: 'completed', actualTokens: 10 });
    const key = limiter.policy().promptPlan(limiter.policy().subject('http', USER, TENANT)).tokens[0]!;
    expect(memory.peek([key], clock.now())[0]).toMatchObject({ remaining: 90 });
    // 90 tokens fit now; 91 do not until the committed 10 leave the window, a minute after they were charged.
    expect((await limiter.onPrompt(context({ message_id: 'm-2' }), { estimatedTokens: 91 })).continue).toBe(false);
    clock.advance(30_001);
    expect((await limiter.onPrompt(context({ message_id: 'm-3' }), { estimatedTokens: 91 })).continue).toBe(true);
  });
});

describe('RateLimiter: every refusal text is the operator’s to set', () => {
  it('renders the concurrency, too-large and unavailable texts from their templates', async () => {
    const unavailable = new FakeStore(() => ({ allowed: false, unavailable: true, retryAfterMs: 3000, results: [] }));
    const down = setup({ config: { by_user: '3/m', unavailable_message: 'Down for {retry_after}.' }, store: unavailable });
    expect(violationOf(await down.limiter.onPrompt(context())).description).toBe('Down for 3 seconds.');

    const big = setup({ config: { by_user: { tokens: '100/m' }, too_large_message: '{tokens} tokens is over {limit}.' } });
    expect(violationOf(await big.limiter.onPrompt(context(), { estimatedTokens: 150 })).description).toBe('150 tokens is over 100 tokens per minute.');

    const busy = setup({ config: { by_user: { max_concurrent: 1 }, concurrency_message: 'Easy: {in_progress}. Retry in {retry_after}.' } });
    expect((await busy.limiter.onPrompt(context({ message_id: 'm-1' }))).continue).toBe(true);
    const refused = violationOf(await busy.limiter.onPrompt(context({ message_id: 'm-2' })));
    expect(refused).toMatchObject({ code: 'concurrency_limited', retryAfter: 1, description: 'Easy: you have 1 request in progress. Retry in 1 second.' });
  });
});
