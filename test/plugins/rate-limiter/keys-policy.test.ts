import { describe, expect, it } from 'vitest';
import { slidingWindow, type Algorithm } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { keyScope, normalizeId, normalizeToolName, ownsKey, tenantKey, toolKey, userKey } from '../../../plugins/rate-limiter/keys.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { Policy, type PolicyCheck } from '../../../plugins/rate-limiter/policy.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';

/** A policy and a store, as the limiter wires them, deciding at a fixed time. */
function harness(config: Record<string, unknown>) {
  const policy = new Policy(RateLimiterOptions.parse(config));
  const store = new MemoryStore(slidingWindow as Algorithm<unknown>, 10_000);
  const decide = (checks: readonly PolicyCheck[]) => store.decide(checks, 1_000);
  return {
    policy,
    prompt: (channel: string, user: string, tenant?: string) => decide(policy.forPrompt(policy.subject(channel, user, tenant))).allowed,
    tool: (channel: string, user: string, tool: string, tenant?: string) =>
      decide(policy.forTool(policy.subject(channel, user, tenant), tool)).allowed,
  };
}

describe('normalizeId', () => {
  it.each([
    ['alice', 'alice'],
    [' alice ', 'alice'],
    ['ALICE', 'alice'],
    ['ａｌｉｃｅ', 'alice'],
    ['ＡＬＩＣＥ', 'alice'],
    ['\u3000alice\u3000', 'alice'],
    ['', ''],
    ['   ', ''],
    ['\t\n', ''],
  ])('%j -> %j', (raw, normal) => {
    expect(normalizeId(raw)).toBe(normal);
    expect(normalizeToolName(raw)).toBe(normal);
  });
});

describe('keys', () => {
  const user = (channel: string, id: string) => keyScope(channel, id, undefined);

  it('cannot confuse a tool/user pair with another one containing separators', () => {
    expect(toolKey(user('http', 'c'), 'a:b')).not.toBe(toolKey(user('http', 'b:c'), 'a'));
    expect(toolKey(user('http', '1:b'), 'a')).not.toBe(toolKey(user('http', 'b'), 'a:1'));
    expect(toolKey(keyScope('http', 'b:c', 't'), 'a')).not.toBe(toolKey(keyScope('http', 'c', 't'), 'a:b'));
  });

  it('keeps users, tenants and tools in separate namespaces', () => {
    const scope = keyScope('http', 'x', 'x');
    const keys = new Set([userKey(user('http', 'x')), userKey(scope), tenantKey(scope), toolKey(scope, 'x'), toolKey(user('http', 'x'), 'x')]);
    expect(keys.size).toBe(5);
  });

  /** The Redis Cluster hash tag: the text between the first { and the first } after it. */
  const hashTag = (key: string) => key.slice(key.indexOf('{') + 1, key.indexOf('}', key.indexOf('{')));

  it('gives every key of one request the same hash tag, so a Redis Cluster keeps them in one slot', () => {
    const tenantScoped = keyScope('http', 'alice', 'acme');
    expect(new Set([tenantKey(tenantScoped), userKey(tenantScoped), toolKey(tenantScoped, 'search')].map(hashTag))).toEqual(
      new Set(['t:acme']),
    );
    const userScoped = user('http', 'alice');
    expect(new Set([userKey(userScoped), toolKey(userScoped, 'search')].map(hashTag))).toEqual(new Set(['http:alice']));
  });

  it('escapes braces in ids, so an id cannot cut the hash tag short and land in another key', () => {
    const tricky = user('http', 'al}ice{');
    expect(hashTag(userKey(tricky))).toBe('http:al%7Dice%7B');
    expect(userKey(tricky)).not.toBe(userKey(user('http', 'al')));
    expect(userKey(user('http', '%7D'))).not.toBe(userKey(user('http', '}')));
  });
});

describe('user buckets', () => {
  it("' alice ', 'ALICE' and fullwidth 'ａｌｉｃｅ' share one bucket", () => {
    const { prompt } = harness({ by_user: '3/m' });
    expect(prompt('http', ' alice ')).toBe(true);
    expect(prompt('http', 'ALICE')).toBe(true);
    expect(prompt('http', 'ａｌｉｃｅ')).toBe(true);
    expect(prompt('http', 'alice')).toBe(false);
    // Someone else is untouched.
    expect(prompt('http', 'bob')).toBe(true);
  });

  it("blank ids share the channel's one anonymous bucket, distinct from users called 'anon'", () => {
    const { prompt } = harness({ by_user: '2/m' });
    expect(prompt('http', '')).toBe(true);
    expect(prompt('http', '   ')).toBe(true);
    expect(prompt('http', '\t')).toBe(false);
    expect(prompt('http', '')).toBe(false);
    for (const named of ['anon', 'anonymous', 'null', 'undefined', '-']) expect(prompt('http', named)).toBe(true);
    // Another channel's anonymous user is a different bucket.
    expect(prompt('cli', '')).toBe(true);
  });

  it('the same user id on two channels gets two buckets', () => {
    const { prompt } = harness({ by_user: '1/m' });
    expect(prompt('http', '7')).toBe(true);
    expect(prompt('http', '7')).toBe(false);
    expect(prompt('telegram', '7')).toBe(true);
    expect(prompt('telegram', '7')).toBe(false);
  });
});

describe('tenant buckets', () => {
  it("are shared by all the tenant's users on every channel, with normalised tenant ids", () => {
    const { prompt } = harness({ by_user: '100/m', by_tenant: '3/m' });
    expect(prompt('http', 'alice', 'acme')).toBe(true);
    expect(prompt('telegram', 'bob', ' ACME ')).toBe(true);
    expect(prompt('cli', 'carol', 'ａｃｍｅ')).toBe(true);
    expect(prompt('http', 'dave', 'acme')).toBe(false);
    // Another tenant, and users without a tenant, are not affected.
    expect(prompt('http', 'erin', 'globex')).toBe(true);
    expect(prompt('http', 'frank')).toBe(true);
  });

  it('apply only when the request names a tenant', () => {
    const { policy } = harness({ by_user: '30/m', by_tenant: '100/m' });
    for (const tenant of [undefined, '', '   ']) {
      const subject = policy.subject('http', 'alice', tenant);
      expect(subject.tenant).toBeUndefined();
      expect(policy.forPrompt(subject).map((c) => c.rule.name)).toEqual(['user']);
      expect(policy.forTool(subject, 'search').map((c) => c.rule.name)).toEqual(['tool']);
    }
  });

  it('a tenant-only policy limits nothing for a request without a tenant', () => {
    const { policy } = harness({ by_tenant: '1/m' });
    const subject = policy.subject('http', 'alice', undefined);
    expect(policy.forPrompt(subject)).toEqual([]);
    expect(policy.forTool(subject, 'search')).toEqual([]);
  });
});

describe('which rules apply', () => {
  it('a prompt fetch counts against the user and tenant rules; a tool call against the tenant and tool rules', () => {
    const { policy } = harness({ by_user: '30/m', by_tenant: '1000/h', by_tool: { search: '10/m' } });
    const subject = policy.subject('http', 'alice', 'acme');
    expect(policy.forPrompt(subject).map((c) => [c.rule.name, c.rule.source])).toEqual([
      ['user', '30/m'],
      ['tenant', '1000/h'],
    ]);
    expect(policy.forTool(subject, 'search').map((c) => [c.rule.name, c.rule.source])).toEqual([
      ['tenant', '1000/h'],
      ['tool', '10/m'],
    ]);
  });

  it("tool names ' Search ' and 'SEARCH' hit the by_tool 'search' rule", () => {
    const { policy, tool, prompt } = harness({ by_user: '100/m', by_tool: { search: '2/m' } });
    for (const name of [' Search ', 'SEARCH', 'ｓｅａｒｃｈ']) {
      const [check] = policy.forTool(policy.subject('http', 'alice', undefined), name);
      expect(check!.rule.source).toBe('2/m');
    }
    expect(tool('http', 'alice', ' Search ')).toBe(true);
    expect(tool('http', 'alice', 'SEARCH')).toBe(true);
    expect(tool('http', 'alice', 'search')).toBe(false);
    // Prompts and other users are separate buckets.
    expect(prompt('http', 'alice')).toBe(true);
    expect(tool('http', 'bob', 'search')).toBe(true);
  });

  it('a by_tool entry written with capitals still matches', () => {
    const { tool } = harness({ by_tool: { ' Search ': '1/m' } });
    expect(tool('http', 'alice', 'search')).toBe(true);
    expect(tool('http', 'alice', 'SEARCH')).toBe(false);
  });

  it("a tool without its own rate is limited at by_user's rate on its own user+tool bucket", () => {
    const { policy, tool, prompt } = harness({ by_user: '2/m', by_tool: { search: '10/m' } });
    const [check] = policy.forTool(policy.subject('http', 'alice', undefined), 'translate');
    expect(check!.rule).toMatchObject({ name: 'tool', source: '2/m', limit: 2, windowMs: 60_000 });

    expect(tool('http', 'alice', 'translate')).toBe(true);
    expect(tool('http', 'alice', 'translate')).toBe(true);
    expect(tool('http', 'alice', 'translate')).toBe(false);
    // Not the user's prompt bucket, not another tool's bucket, not another user's.
    expect(prompt('http', 'alice')).toBe(true);
    expect(prompt('http', 'alice')).toBe(true);
    expect(tool('http', 'alice', 'weather')).toBe(true);
    expect(tool('http', 'bob', 'translate')).toBe(true);
  });

  it('without by_user, a tool without its own rate has no per-user limit', () => {
    const { policy } = harness({ by_tool: { search: '10/m' } });
    expect(policy.forTool(policy.subject('http', 'alice', undefined), 'translate')).toEqual([]);
    expect(policy.forPrompt(policy.subject('http', 'alice', undefined))).toEqual([]);
  });

  it('advertises each rule as an IETF RateLimit-Policy item and describes it for the reply', () => {
    const { policy } = harness({ by_user: '30/m', by_tenant: '100/15m' });
    const checks = policy.forPrompt(policy.subject('http', 'alice', 'acme'));
    expect(checks.map((c) => c.rule.policyItem)).toEqual(['"user";q=30;w=60', '"tenant";q=100;w=900']);
    expect(checks.map((c) => c.rule.description)).toEqual(['30 per minute', '100 per 15 minutes']);
  });
});

describe('Policy: tokens, concurrency and shadow settings', () => {
  const policy = new Policy(
    RateLimiterOptions.parse({
      by_user: { rate: '30/m', tokens: ['20000/m', '1000000/d'], max_concurrent: 2, queue_timeout_ms: 250 },
      by_tenant: { rate: '1000/h', max_concurrent: 10, queue_timeout_ms: 900 },
      by_tool: { search: { rate: '5/m', shadow: true } },
    }),
  );
  const subject = policy.subject('http', 'Alice', 'Acme');

  it('a prompt fetch is held to the requests rules, the token windows and both concurrency caps', () => {
    const plan = policy.promptPlan(subject);
    expect(plan.checks.map((c) => [c.key, c.rule.label])).toEqual([
      ['{t:acme}u:http:alice|60000', 'user'],
      ['{t:acme}|3600000', 'tenant'],
    ]);
    expect(plan.tokens.map((c) => [c.key, c.rule.label, c.rule.unit, c.rule.policyItem])).toEqual([
      ['{t:acme}u:http:alice|tok|60000', 'user-tokens-1m', 'tokens', '"user-tokens-1m";q=20000;w=60;qu="tokens"'],
      ['{t:acme}u:http:alice|tok|86400000', 'user-tokens-1d', 'tokens', '"user-tokens-1d";q=1000000;w=86400;qu="tokens"'],
    ]);
    expect(plan.slots).toEqual([
      { key: '{t:acme}u:http:alice|conc', limit: 2, label: 'user' },
      { key: '{t:acme}|conc', limit: 10, label: 'tenant' },
    ]);
    expect(plan.queueTimeoutMs).toBe(900);
    expect(policy.maxQueueMs).toBe(900);
    expect(policy.holdsPrompts).toBe(true);
  });

  it('a reset owns the user\'s token and slot keys, never the tenant\'s', () => {
    const plan = policy.promptPlan(subject);
    const owned = [...plan.checks, ...plan.tokens].map((c) => c.key).concat(plan.slots.map((s) => s.key)).filter((key) => ownsKey(subject.scope, key));
    expect(owned).toEqual([
      '{t:acme}u:http:alice|60000',
      '{t:acme}u:http:alice|tok|60000',
      '{t:acme}u:http:alice|tok|86400000',
      '{t:acme}u:http:alice|conc',
    ]);
  });

  it('a shadow tool rate is its own group, outside the enforced checks; tools never carry tokens', () => {
    const plan = policy.toolPlan(subject, ' SEARCH ');
    expect(plan.checks.map((c) => c.rule.label)).toEqual(['tenant']);
    expect(plan.shadow.map((g) => g.checks.map((c) => [c.rule.label, c.rule.shadow]))).toEqual([[['tool', true]]]);
    const other = policy.toolPlan(subject, 'translate');
    expect(other.checks.map((c) => [c.rule.label, c.rule.unit])).toEqual([
      ['tenant', 'requests'],
      ['tool', 'requests'],
    ]);
  });
});

describe('calendar windows in the policy', () => {
  const policy = new Policy(
    RateLimiterOptions.parse({
      by_user: { rate: ['1000/d', '1000/calendar_day'] },
      by_tenant: { tokens: '5000000/calendar_month' },
      by_tool: { search: '10/calendar_day' },
      time_zone: 'Europe/Berlin',
    }),
  );
  const subject = policy.subject('http', 'Alice', 'Acme');

  it('count on keys of their own: never the sliding day of the same length, and the zone in the key', () => {
    const plan = policy.promptPlan(subject);
    expect(plan.checks.map((c) => [c.key, c.rule.label, c.rule.window, c.rule.calendar?.unit])).toEqual([
      ['{t:acme}u:http:alice|86400000', 'user-1d', '1d', undefined],
      ['{t:acme}u:http:alice|cal:day:Europe/Berlin', 'user-calendar_day', 'calendar_day', 'day'],
    ]);
    expect(plan.tokens.map((c) => [c.key, c.rule.label, c.rule.description])).toEqual([
      ['{t:acme}|tok|cal:month:Europe/Berlin', 'tenant-tokens', '5000000 tokens per calendar month'],
    ]);
    expect(policy.toolPlan(subject, 'search').checks.map((c) => c.key)).toEqual(['{t:acme}tool:6:search:http:alice|cal:day:Europe/Berlin']);
  });

  it('a reset owns the user\'s calendar keys, never the tenant\'s', () => {
    const keys = [
      ...policy.promptPlan(subject).checks.map((c) => c.key),
      ...policy.promptPlan(subject).tokens.map((c) => c.key),
      ...policy.toolPlan(subject, 'search').checks.map((c) => c.key),
    ];
    expect(keys.filter((key) => ownsKey(subject.scope, key))).toEqual([
      '{t:acme}u:http:alice|86400000',
      '{t:acme}u:http:alice|cal:day:Europe/Berlin',
      '{t:acme}tool:6:search:http:alice|cal:day:Europe/Berlin',
    ]);
  });

  it('names each window with its zone, so a reload to another zone reports it as new', () => {
    expect(policy.windows()).toEqual([
      'user 1d',
      'user calendar_day Europe/Berlin',
      'tenant-tokens calendar_month Europe/Berlin',
      'tool 1d',
      'tool calendar_day Europe/Berlin',
      'tool:search calendar_day Europe/Berlin',
    ]);
  });
});
