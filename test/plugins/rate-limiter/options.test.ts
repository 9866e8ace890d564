import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { DEFAULT_MESSAGE, DEFAULT_REPLIES } from '../../../plugins/rate-limiter/present/reply.ts';
import { formatIssues } from '../../../src/config/issues.ts';

/** The operator-facing problem lines for a config, as the host would print them (without its prefix). */
function problems(config: unknown): string[] {
  const result = RateLimiterOptions.safeParse(config, { reportInput: true });
  expect(result.success).toBe(false);
  if (result.success) return [];
  return formatIssues(result.error, RateLimiterOptions);
}

describe('RateLimiterOptions: valid configs', () => {
  it('fills in defaults around a single rule', () => {
    const result = RateLimiterOptions.safeParse({ by_user: '30/m' }, { reportInput: true });
    expect(result.success).toBe(true);
    expect(result.data).toEqual({
      by_user: {
        rates: [{ limit: 30, windowMs: 60_000, source: '30/m' }],
        tokens: [],
        maxConcurrent: undefined,
        queueTimeoutMs: 0,
        shadow: false,
      },
      by_tool: {},
      concurrency_lease_ms: 60_000,
      algorithm: 'sliding_window',
      backend: 'memory',
      message: DEFAULT_MESSAGE,
      concurrency_message: DEFAULT_REPLIES.concurrency_message,
      too_large_message: DEFAULT_REPLIES.too_large_message,
      unavailable_message: DEFAULT_REPLIES.unavailable_message,
      address_message: DEFAULT_REPLIES.address_message,
      denied_message: DEFAULT_REPLIES.denied_message,
      headers: 'all',
      max_keys: 100_000,
      redis_key_prefix: 'fg',
      redis_timeout_ms: 50,
      time_zone: 'UTC',
      on_backend_error: 'fallback',
      refusal_cache: true,
      exempt_users: [],
      exempt_tenants: [],
      deny_users: [],
      deny_tenants: [],
    });
    expect(result.data!.by_tenant).toBeUndefined();
    expect(result.data!.reply_cooldown).toBeUndefined();
  });

  it('accepts every setting at once', () => {
    const result = RateLimiterOptions.safeParse(
      {
        by_user: '30/m',
        by_tenant: '1000/h',
        by_tool: { search: '10/m', ' Translate ': '5/15m' },
        algorithm: 'token_bucket',
        backend: 'memory',
        message: 'Slow down: {limit}. Try again in {retry_after}.',
        reply_cooldown: 0,
        max_keys: 500,
      },
      { reportInput: true },
    );
    expect(result.success).toBe(true);
    expect(result.data!.by_tool).toMatchObject({
      search: { rates: [{ limit: 10, windowMs: 60_000, source: '10/m' }], tokens: [], shadow: false },
      ' Translate ': { rates: [{ limit: 5, windowMs: 900_000, source: '5/15m' }] },
    });
    expect(result.data!.reply_cooldown).toBe(0);
  });

  it('accepts the manifest default_config overlaid with a rule (what the host parses)', () => {
    const manifest = parseYaml(readFileSync(new URL('../../../plugin-manifest.yaml', import.meta.url), 'utf8')) as {
      default_config: Record<string, unknown>;
    };
    const result = RateLimiterOptions.safeParse({ ...manifest.default_config, by_user: '30/m' }, { reportInput: true });
    expect(result.success).toBe(true);
    expect(result.data).toMatchObject({ algorithm: 'sliding_window', backend: 'memory', max_keys: 100_000 });
  });
});

describe('RateLimiterOptions: the object form of a setting', () => {
  it('takes rate, tokens, max_concurrent, queue_timeout_ms and shadow', () => {
    const options = RateLimiterOptions.parse({
      by_user: { rate: ['30/m', '500/h'], tokens: ['20000/m', '1000000/d'], max_concurrent: 2, queue_timeout_ms: 500 },
      by_tenant: { rate: '1000/h', shadow: true },
      by_tool: { search: { rate: '10/m', shadow: true } },
    });
    expect(options.by_user).toEqual({
      rates: [
        { limit: 30, windowMs: 60_000, source: '30/m' },
        { limit: 500, windowMs: 3_600_000, source: '500/h' },
      ],
      tokens: [
        { limit: 20_000, windowMs: 60_000, source: '20000/m' },
        { limit: 1_000_000, windowMs: 86_400_000, source: '1000000/d' },
      ],
      maxConcurrent: 2,
      queueTimeoutMs: 500,
      shadow: false,
    });
    expect(options.by_tenant).toMatchObject({ rates: [{ source: '1000/h' }], shadow: true });
    expect(options.by_tool.search).toMatchObject({ rates: [{ source: '10/m' }], shadow: true });
  });

  it('a setting of tokens or concurrency alone is a limit', () => {
    expect(RateLimiterOptions.safeParse({ by_user: { tokens: '20000/m' } }).success).toBe(true);
    expect(RateLimiterOptions.safeParse({ by_tenant: { max_concurrent: 10 } }).success).toBe(true);
  });

  it('names each bad field inside the object', () => {
    expect(problems({ by_user: { rate: '30/x', tokens: ['1/m', 'lots'], max_concurrent: 0, queue_timeout_ms: -1 } })).toEqual([
      'by_user.rate: "30/x" has unknown unit "x"; write <count>/<window> with window s, m, h or d (optionally with a multiple), e.g. "30/m" or "100/15m", or a calendar window: "1000/calendar_day", "5000000/calendar_month"',
      'by_user.tokens[1]: "lots" is not a rate; write <count>/<window> with window s, m, h or d (optionally with a multiple), e.g. "30/m" or "100/15m", or a calendar window: "1000/calendar_day", "5000000/calendar_month"',
      'by_user.max_concurrent: Too small: expected number to be >=1',
      'by_user.queue_timeout_ms: Too small: expected number to be >=0',
    ]);
  });

  it('suggests the field a typo meant', () => {
    expect(problems({ by_user: { rat: '30/m' } })).toEqual([
      'by_user.rat: unknown field (did you mean "rate"?)',
      'by_user: set at least one of rate, tokens or max_concurrent',
    ]);
  });

  it('refuses settings that cannot work, saying why', () => {
    expect(problems({ by_user: { rate: '30/m', queue_timeout_ms: 100 } })).toEqual(['by_user.queue_timeout_ms: queue_timeout_ms needs max_concurrent']);
    expect(problems({ by_user: { max_concurrent: 2, shadow: true } })).toEqual([
      'by_user.max_concurrent: a shadow setting cannot cap concurrency (it would have to hold real slots); drop max_concurrent or shadow',
    ]);
    expect(problems({ by_user: {} })).toEqual(['by_user: set at least one of rate, tokens or max_concurrent']);
  });

  it('keeps tokens and concurrency to prompt fetches: a by_tool entry with them is refused', () => {
    expect(problems({ by_tool: { search: { rate: '10/m', tokens: '100/m', max_concurrent: 1 } } })).toEqual([
      'by_tool.search.tokens: tokens apply to prompt fetches: set them on by_user or by_tenant',
      'by_tool.search.max_concurrent: max_concurrent applies to prompt fetches: set it on by_user or by_tenant',
    ]);
  });
});

describe('RateLimiterOptions: what an operator is told', () => {
  it('names by_user and quotes the bad rate', () => {
    const lines = problems({ by_user: '30/x' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^by_user: "30\/x" has unknown unit "x"; .*e\.g\. "30\/m"/);
  });

  it('names by_tool.search for a bad per-tool rate', () => {
    expect(problems({ by_tool: { search: 'abc' } })).toEqual([
      'by_tool.search: "abc" is not a rate; write <count>/<window> with window s, m, h or d (optionally with a multiple), e.g. "30/m" or "100/15m", or a calendar window: "1000/calendar_day", "5000000/calendar_month"',
    ]);
  });

  it('names by_tenant for a zero count', () => {
    expect(problems({ by_tenant: '0/m' })).toEqual(['by_tenant: "0/m": the count must be between 1 and 1000000000']);
  });

  it("rejects the misspelt field 'bakend' and suggests 'backend'", () => {
    expect(problems({ by_user: '30/m', bakend: 'memory' })).toEqual(['bakend: unknown field (did you mean "backend"?)']);
  });

  it('requires a Redis address with backend "redis", with no silent default', () => {
    expect(problems({ by_user: '30/m', backend: 'redis' })).toEqual([
      'redis_url: backend "redis" needs redis_url (e.g. "redis://127.0.0.1:6379") or redis_cluster',
    ]);
  });

  it('rejects a redis_url that is not redis:// or rediss://, and bad cluster seeds, naming each', () => {
    expect(
      problems({ by_user: '30/m', backend: 'redis', redis_url: 'http://127.0.0.1:6379', on_backend_error: 'ignore' }),
    ).toEqual([
      'redis_url: expected a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"',
      'on_backend_error: string "ignore" is not allowed; expected one of "fallback", "open", "closed"',
    ]);
    expect(problems({ by_user: '30/m', backend: 'redis', redis_cluster: ['127.0.0.1:7000', 'nohost'] })).toEqual([
      'redis_cluster[1]: expected "host:port" or a redis:// URL, e.g. "127.0.0.1:7000"',
    ]);
  });

  it('accepts a Redis or Redis Cluster backend', () => {
    const accepted = (config: unknown) => RateLimiterOptions.safeParse(config).success;
    expect(accepted({ by_user: '30/m', backend: 'redis', redis_url: 'rediss://user:pw@cache.internal:6380/2' })).toBe(true);
    expect(accepted({ by_user: '30/m', backend: 'redis', redis_cluster: ['10.0.0.1:7000', 'redis://10.0.0.2:7001'] })).toBe(true);
    expect(problems({ by_user: '30/m', backend: 'redis', redis_url: 'redis://a:1', redis_cluster: ['b:2'] })).toEqual([
      'redis_cluster: set either redis_url or redis_cluster, not both',
    ]);
  });

  it("rejects backend 'reddis', listing what is allowed", () => {
    expect(problems({ by_user: '30/m', backend: 'reddis' })).toEqual([
      'backend: string "reddis" is not allowed; expected one of "memory", "redis"',
    ]);
  });

  it('rejects an unknown algorithm, listing all three', () => {
    expect(problems({ by_user: '30/m', algorithm: 'token-bucket' })).toEqual([
      'algorithm: string "token-bucket" is not allowed; expected one of "sliding_window", "fixed_window", "token_bucket"',
    ]);
  });

  it('rejects a reply placeholder that could leak an id, such as {user}', () => {
    expect(problems({ by_user: '30/m', message: 'Hi {user}, wait {retry_after}' })).toEqual([
      'message: unknown placeholder {user}; the message may use only {retry_after} and {limit}',
    ]);
  });

  it('rejects an empty reply', () => {
    expect(problems({ by_user: '30/m', message: '  ' })).toEqual(['message: the message must not be empty']);
  });

  it('rejects a config with no rule at all', () => {
    expect(problems({})).toEqual(['(top level): no limit configured: set by_user, by_tenant, by_tool or by_address']);
    expect(problems({ by_tool: {}, algorithm: 'fixed_window' })).toEqual([
      '(top level): no limit configured: set by_user, by_tenant, by_tool or by_address',
    ]);
  });

  it("rejects 'Search' and 'search' together in by_tool, naming both", () => {
    const lines = problems({ by_tool: { Search: '1/m', search: '2/m' } });
    expect(lines).toEqual([
      'by_tool.search: "search" and "Search" name the same tool (names are matched trimmed and case-folded)',
    ]);
  });

  it('rejects a blank tool name', () => {
    expect(problems({ by_tool: { '  ': '1/m' } })).toEqual(['by_tool.  : a tool name must not be empty']);
  });

  it.each([
    [{ reply_cooldown: -1 }, 'reply_cooldown'],
    [{ reply_cooldown: 86_401 }, 'reply_cooldown'],
    [{ max_keys: 0 }, 'max_keys'],
    [{ max_keys: 1.5 }, 'max_keys'],
    [{ by_user: 30 }, 'by_user'],
  ])('rejects out-of-range or mistyped %j, naming %s', (bad, field) => {
    const lines = problems({ by_user: '30/m', ...bad });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.startsWith(`${field}: `)).toBe(true);
  });

  it('reports several problems at once', () => {
    const lines = problems({ by_user: '0/m', by_tool: { search: '60/x' }, bakend: 'x', backend: 'reddis', message: '{user}' });
    expect(lines).toHaveLength(5);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^by_user: "0\/m": the count must be/),
        expect.stringMatching(/^by_tool\.search: "60\/x" has unknown unit "x"/),
        'backend: string "reddis" is not allowed; expected one of "memory", "redis"',
        'message: unknown placeholder {user}; the message may use only {retry_after} and {limit}',
        'bakend: unknown field (did you mean "backend"?)',
      ]),
    );
  });

  it('reports a misspelt field and the missing rule it caused together', () => {
    expect(problems({ by_usr: '30/m' })).toEqual([
      'by_usr: unknown field (did you mean "by_user"?)',
      '(top level): no limit configured: set by_user, by_tenant, by_tool or by_address',
    ]);
  });
});

describe('RateLimiterOptions: every refusal text', () => {
  it('takes a text of its own for each kind of refusal, refusing placeholders that kind has no value for', () => {
    const problems = (config: Record<string, unknown>) => {
      const result = RateLimiterOptions.safeParse({ by_user: '30/m', ...config });
      return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(problems({ concurrency_message: 'Busy: {in_progress}; wait {retry_after}.', too_large_message: '{tokens} > {limit}', unavailable_message: 'Back in {retry_after}.' })).toEqual([]);
    expect(problems({ concurrency_message: 'Busy, {user}', too_large_message: 'wait {retry_after}', unavailable_message: '' })).toEqual([
      'concurrency_message: unknown placeholder {user}; the message may use only {in_progress} and {retry_after}',
      'too_large_message: unknown placeholder {retry_after}; the message may use only {tokens} and {limit}',
      'unavailable_message: the message must not be empty',
    ]);
  });
});

describe('RateLimiterOptions: by_address and the deny lists', () => {
  it('takes a rate for every route group, rates of their own, and the address lists, with defaults', () => {
    const result = RateLimiterOptions.safeParse({
      by_address: { rate: '120/m', routes: { admin: '10/m', webhooks: ['600/m', '10000/h'] }, exempt: ['10.0.0.0/8'], deny: ['203.0.113.0/24', '2001:db8::1'] },
    });
    expect(result.success).toBe(true);
    expect(result.data!.by_address).toEqual({
      rate: { limit: 120, windowMs: 60_000, source: '120/m' },
      routes: {
        admin: { limit: 10, windowMs: 60_000, source: '10/m' },
        webhooks: [
          { limit: 600, windowMs: 60_000, source: '600/m' },
          { limit: 10_000, windowMs: 3_600_000, source: '10000/h' },
        ],
      },
      failed_auth_cost: 10,
      ipv6_prefix: 64,
      exempt: ['10.0.0.0/8'],
      deny: ['203.0.113.0/24', '2001:db8::1'],
    });
    // by_address alone, or a deny list alone, is a limit.
    expect(RateLimiterOptions.safeParse({ by_address: { deny: ['192.0.2.0/24'] } }).success).toBe(true);
    expect(RateLimiterOptions.safeParse({ deny_users: ['mallory'] }).success).toBe(true);
  });

  it('names every problem: a misspelt route group (with a hint), a bad rate, a bad range, a cost or prefix out of range', () => {
    expect(
      problems({
        by_address: { rate: '120/fortnight', routes: { admn: '10/m' }, exempt: ['10.0.0.0/8', '10.0.0.0/40'], deny: ['bad'], failed_auth_cost: 0, ipv6_prefix: 129 },
      }),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^by_address\.rate: "120\/fortnight" has unknown unit "fortnight"/),
        'by_address.routes.admn: unknown field (did you mean "admin"?)',
        'by_address.exempt[1]: "10.0.0.0/40": the prefix length must be a whole number from 0 to 32',
        'by_address.deny[0]: "bad" is not an IP address or CIDR range (e.g. "10.0.0.0/8", "2001:db8::/32")',
        expect.stringMatching(/^by_address\.failed_auth_cost: /),
        expect.stringMatching(/^by_address\.ipv6_prefix: /),
      ]),
    );
    expect(problems({ by_address: { exempt: ['10.0.0.0/8'] } })).toEqual(['by_address: set at least one of rate, routes or deny']);
    expect(problems({ by_address: { rat: '1/m' } })).toEqual(
      expect.arrayContaining(['by_address.rat: unknown field (did you mean "rate"?)']),
    );
  });

  it('blocks addresses only where by_address has a rate to refuse with', () => {
    expect(problems({ by_user: '30/m', block: { durations: ['1m'], subjects: ['address'] } })).toEqual([
      'block.subjects: blocking "address" needs a by_address rate (its refusals are what start the blocks)',
    ]);
    expect(RateLimiterOptions.safeParse({ by_address: { rate: '100/m' }, block: { durations: ['1m'], subjects: ['address'] } }).success).toBe(true);
  });

  it('refuses an id that is both exempt and denied, matched as requests are (trimmed, case-folded)', () => {
    expect(problems({ by_user: '30/m', exempt_users: ['Alice'], deny_users: ['bob', ' ALICE '], exempt_tenants: ['acme'], deny_tenants: ['acme'] })).toEqual([
      'deny_users[1]: also listed in exempt_users; an id cannot be both exempt and denied',
      'deny_tenants[0]: also listed in exempt_tenants; an id cannot be both exempt and denied',
    ]);
  });

  it('refuses placeholders in the denied reply, which has nothing to fill in', () => {
    expect(problems({ by_user: '30/m', denied_message: 'Go away, {user}.', address_message: 'Wait {retry_after} ({limit}).' })).toEqual([
      'denied_message: unknown placeholder {user}; this message takes no placeholders',
    ]);
  });
});

describe('RateLimiterOptions: calendar windows', () => {
  it('reads a monthly token budget and a calendar day beside sliding windows, in a time zone', () => {
    const options = RateLimiterOptions.parse({
      by_user: ['30/m', '2000/d', '1000/calendar_day'],
      by_tenant: { tokens: '5000000/calendar_month' },
      time_zone: 'Europe/Berlin',
    });
    expect(options.time_zone).toBe('Europe/Berlin');
    expect(options.by_user!.rates.map((r) => r.calendarUnit)).toEqual([undefined, undefined, 'day']);
    expect(options.by_tenant!.tokens).toEqual([{ limit: 5_000_000, windowMs: 31 * 86_400_000, source: '5000000/calendar_month', calendarUnit: 'month' }]);
  });

  it('counts in UTC unless told otherwise', () => {
    expect(RateLimiterOptions.parse({ by_user: '10/calendar_day' }).time_zone).toBe('UTC');
  });

  it('names a time zone it does not know, and the one it probably meant', () => {
    expect(problems({ by_user: '10/calendar_day', time_zone: 'Europe/Berln' })).toEqual([
      'time_zone: "Europe/Berln" is not a time zone (did you mean "Europe/Berlin"?); write an IANA name such as "Europe/Berlin" or "UTC"',
    ]);
    expect(problems({ by_user: '10/calendar_day', time_zone: '+01:00' })).toEqual([
      'time_zone: "+01:00" is not a time zone; write an IANA name such as "Europe/Berlin" or "UTC"',
    ]);
    expect(problems({ by_user: '10/calendar_day', time_zone: 1 })[0]).toMatch(/^time_zone: /);
  });

  it('lists every calendar problem at once, each with its field', () => {
    expect(
      problems({
        by_user: ['1/calendar_day', '2/calendar_day'],
        by_tenant: { tokens: '5000000/month' },
        by_tool: { search: '10/2calendar_day' },
        time_zone: 'Mars/Olympus_Mons',
      }),
    ).toEqual([
      'by_user[1]: another rate in this list has the same window',
      'by_tenant.tokens: "5000000/month": a month is a calendar window, reset on the first of the month: write "5000000/calendar_month"',
      'by_tool.search: "10/2calendar_day": a calendar window takes no multiple; write "10/calendar_day"',
      'time_zone: "Mars/Olympus_Mons" is not a time zone; write an IANA name such as "Europe/Berlin" or "UTC"',
    ]);
  });

  it('a calendar day and the sliding day of the same length are two windows of one list', () => {
    expect(RateLimiterOptions.safeParse({ by_user: ['1000/d', '1000/calendar_day'] }).success).toBe(true);
  });
});
