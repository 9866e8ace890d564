import { describe, expect, it } from 'vitest';
import { fixedWindow, slidingWindow, type Algorithm } from '../../../plugins/rate-limiter/algorithms/index.ts';
import { bindingIndex, ceilSeconds } from '../../../plugins/rate-limiter/engine/outcome.ts';
import { AdmittedAnswers } from '../../../plugins/rate-limiter/present/admitted.ts';
import { rateLimitHeaders } from '../../../plugins/rate-limiter/present/headers.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { Policy } from '../../../plugins/rate-limiter/policy.ts';
import { DEFAULT_MESSAGE, humanDuration, renderReply, templateProblems } from '../../../plugins/rate-limiter/present/reply.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import type { Decision, RuleResult } from '../../../plugins/rate-limiter/store/types.ts';
import { systemClock } from '../../../src/clock.ts';

describe('humanDuration', () => {
  it.each([
    [0, '1 second'],
    [1, '1 second'],
    [2, '2 seconds'],
    [45, '45 seconds'],
    [119, '119 seconds'],
    [120, '2 minutes'],
    [121, '3 minutes'],
    [3600, '60 minutes'],
    [7199, '120 minutes'],
    [7200, '2 hours'],
    [7201, '3 hours'],
    [86_400, '24 hours'],
    [172_799, '48 hours'],
    [172_800, '2 days'],
    [172_801, '3 days'],
  ])('%i s reads "%s" (never shorter than the real wait)', (seconds, text) => {
    expect(humanDuration(seconds)).toBe(text);
  });
});

describe('renderReply', () => {
  it('fills in the wait and the limit', () => {
    expect(renderReply(DEFAULT_MESSAGE, 42, '30 per minute')).toBe(
      "You're sending messages a little too fast. Please wait 42 seconds and try again.",
    );
    expect(renderReply('{limit}: wait {retry_after}, then {retry_after} more.', 600, '5 per hour')).toBe(
      '5 per hour: wait 10 minutes, then 10 minutes more.',
    );
  });

  it('substitutes nothing but {retry_after} and {limit}', () => {
    expect(renderReply('{user} {tenant} {key} {} {RETRY_AFTER} {retry_after} {limit}', 5, '3 per 10 seconds')).toBe(
      '{user} {tenant} {key} {} {RETRY_AFTER} 5 seconds 3 per 10 seconds',
    );
  });

  it('leaves a template without placeholders as it is', () => {
    expect(renderReply('Too many requests.', 5, 'x')).toBe('Too many requests.');
  });

  it('the default message passes template validation', () => {
    expect(templateProblems(DEFAULT_MESSAGE)).toEqual([]);
  });
});

describe('rate-limit headers', () => {
  /** user 3/m and tenant 100/h, decided by a real store, with clock `t`. */
  function scenario() {
    const policy = new Policy(RateLimiterOptions.parse({ by_user: '3/m', by_tenant: '100/h' }));
    const store = new MemoryStore(slidingWindow as Algorithm<unknown>, 1000);
    const checks = policy.forPrompt(policy.subject('http', 'alice', 'acme'));
    const send = (t: number) => {
      const decision = store.decide(checks, t);
      return rateLimitHeaders(checks, decision, bindingIndex(decision));
    };
    return { send };
  }

  it('when admitted: X-RateLimit-* for the tightest rule, every rule in RateLimit-Policy and RateLimit, no Retry-After', () => {
    const { send } = scenario();
    expect(send(0)).toEqual({
      'X-RateLimit-Limit': '3',
      'X-RateLimit-Remaining': '2',
      'X-RateLimit-Reset': '60',
      'RateLimit-Policy': '"user";q=3;w=60, "tenant";q=100;w=3600',
      RateLimit: '"user";r=2;t=60, "tenant";r=99;t=3600',
    });
    const second = send(20_500);
    expect(second['X-RateLimit-Remaining']).toBe('1');
    // The user's rule resets when its newest request leaves the window: 60 s after 20.5 s, from now.
    expect(second['X-RateLimit-Reset']).toBe('60');
    expect(second.RateLimit).toBe('"user";r=1;t=60, "tenant";r=98;t=3600');
  });

  it('when refused: Retry-After in whole seconds, rounded up, with the refusing rule in X-RateLimit-*', () => {
    const { send } = scenario();
    send(0);
    send(0);
    send(500);
    const refused = send(1000);
    expect(refused['Retry-After']).toBe('59');
    expect(refused['X-RateLimit-Limit']).toBe('3');
    expect(refused['X-RateLimit-Remaining']).toBe('0');
    expect(refused['X-RateLimit-Reset']).toBe('60');
    expect(refused.RateLimit).toBe('"user";r=0;t=60, "tenant";r=97;t=3600');
    expect(refused['RateLimit-Policy']).toBe('"user";q=3;w=60, "tenant";q=100;w=3600');
    // 1.5 s left rounds up to 2, so a client waiting that long is never early.
    expect(send(58_500)['Retry-After']).toBe('2');
  });

  it('Retry-After is at least 1 even when the wait is a few milliseconds', () => {
    const { send } = scenario();
    send(0);
    send(0);
    send(0);
    expect(send(59_999)['Retry-After']).toBe('1');
    expect(send(60_000)['Retry-After']).toBeUndefined();
  });

  it.each([
    ['ietf', ['RateLimit-Policy', 'RateLimit']],
    ['legacy', ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']],
    ['none', []],
  ] as const)('headers "%s" sends only %j, and Retry-After on every refusal', (style, names) => {
    const policy = new Policy(RateLimiterOptions.parse({ by_user: '2/m', by_tenant: '100/h', headers: style }));
    const store = new MemoryStore(slidingWindow as Algorithm<unknown>, 1000);
    const checks = policy.forPrompt(policy.subject('http', 'alice', 'acme'));
    const send = (t: number) => {
      const decision = store.decide(checks, t);
      return rateLimitHeaders(checks, decision, bindingIndex(decision), style);
    };
    const admitted = send(0);
    expect(Object.keys(admitted)).toEqual(names);
    if (style === 'ietf') expect(admitted.RateLimit).toBe('"user";r=1;t=60, "tenant";r=99;t=3600');
    if (style === 'legacy') expect(admitted['X-RateLimit-Remaining']).toBe('1');
    send(1000);
    const refused = send(2000);
    expect(Object.keys(refused)).toEqual([...names, 'Retry-After']);
    expect(refused['Retry-After']).toBe('58');
  });

  it('the headers field takes all, ietf, legacy or none, and names itself when wrong', () => {
    expect(RateLimiterOptions.parse({ by_user: '2/m' }).headers).toBe('all');
    const wrong = RateLimiterOptions.safeParse({ by_user: '2/m', headers: 'draft-7' });
    expect(wrong.success).toBe(false);
    expect(wrong.error?.issues[0]?.path).toEqual(['headers']);
  });

  it('admitted answers are built once per thing they say, and follow every change of remaining and reset', () => {
    // A fixed window's answers vary in both remaining and reset: more pairs than the table has slots.
    const cases = [
      { algorithm: fixedWindow, options: { by_user: '600/h' }, style: 'all', distinct: 1000 },
      { algorithm: slidingWindow, options: { by_user: '5/10s', headers: 'legacy' }, style: 'legacy', distinct: 1 },
    ] as const;
    for (const { algorithm, options, style, distinct } of cases) {
      const policy = new Policy(RateLimiterOptions.parse(options));
      const store = new MemoryStore(algorithm as Algorithm<unknown>, 10_000);
      const answers = new AdmittedAnswers(style, systemClock);
      const seen = new Map<string, unknown>();
      let shared = 0;
      for (let t = 0; t < 7_200_000; t += 997) {
        const checks = policy.forPrompt(policy.subject('http', `user-${t % 7}`, undefined));
        const decision = store.decide(checks, t);
        if (!decision.allowed) continue;
        const answer = answers.answer(checks, decision, 0);
        const expected = rateLimitHeaders(checks, decision, 0, style);
        expect(answer).toEqual({ continue: true, headers: expected });
        // Messages that stand alike share one frozen answer while it is in the table.
        const said = JSON.stringify(expected);
        if (seen.get(said) === answer) shared++;
        seen.set(said, answer);
      }
      expect(seen.size).toBeGreaterThan(distinct);
      expect(shared).toBeGreaterThan(0);
      expect(Object.isFrozen([...seen.values()][0])).toBe(true);
    }
    // Standings that meet in one slot of the table each get their own headers.
    const policy = new Policy(RateLimiterOptions.parse({ by_user: '600/h' }));
    const checks = policy.forPrompt(policy.subject('http', 'alice', undefined));
    const answers = new AdmittedAnswers('legacy', systemClock);
    for (const [remaining, resetS] of [[1, 0], [0, 61], [1, 0], [1, 512], [0, 61]] as const) {
      const decision: Decision = { allowed: true, retryAfterMs: 0, results: [{ retryAfterMs: 0, remaining, resetMs: resetS * 1000 }] };
      expect(answers.answer(checks, decision, 0)).toEqual({
        continue: true,
        headers: { 'X-RateLimit-Limit': '600', 'X-RateLimit-Remaining': String(remaining), 'X-RateLimit-Reset': String(resetS) },
      });
    }
  });

  it('ceilSeconds rounds up', () => {
    expect([0, 1, 999, 1000, 1001, 59_999].map(ceilSeconds)).toEqual([0, 1, 1, 1, 2, 60]);
  });
});

describe('bindingIndex', () => {
  const result = (retryAfterMs: number, remaining: number, resetMs: number): RuleResult => ({ retryAfterMs, remaining, resetMs });
  const decision = (allowed: boolean, results: RuleResult[]): Decision => ({
    allowed,
    retryAfterMs: Math.max(0, ...results.map((r) => r.retryAfterMs)),
    results,
  });

  it('when refused, picks the refusing rule with the longest wait', () => {
    expect(bindingIndex(decision(false, [result(0, 5, 1000), result(3000, 0, 3000), result(9000, 0, 9000)]))).toBe(2);
    expect(bindingIndex(decision(false, [result(9000, 0, 9000), result(0, 5, 1000), result(3000, 0, 3000)]))).toBe(0);
  });

  it('when admitted, picks the rule with the fewest requests left, then the later reset', () => {
    expect(bindingIndex(decision(true, [result(0, 7, 1000), result(0, 2, 5000), result(0, 4, 1000)]))).toBe(1);
    expect(bindingIndex(decision(true, [result(0, 2, 1000), result(0, 2, 5000)]))).toBe(1);
    expect(bindingIndex(decision(true, [result(0, 2, 5000), result(0, 2, 1000)]))).toBe(0);
  });

  it('headers follow the binding rule', () => {
    const policy = new Policy(RateLimiterOptions.parse({ by_user: '30/m', by_tenant: '5/h' }));
    const checks = policy.forPrompt(policy.subject('http', 'alice', 'acme'));
    const admitted = decision(true, [result(0, 29, 60_000), result(0, 4, 3_600_000)]);
    const headers = rateLimitHeaders(checks, admitted, bindingIndex(admitted));
    expect(headers['X-RateLimit-Limit']).toBe('5');
    expect(headers['X-RateLimit-Remaining']).toBe('4');
    expect(headers['X-RateLimit-Reset']).toBe('3600');
    expect(headers['Retry-After']).toBeUndefined();

    // A store that refuses without saying for how long still yields a usable Retry-After.
    const unknownWait: Decision = { allowed: false, retryAfterMs: 0, results: [result(0, 0, 0), result(0, 3, 3_000_000)] };
    expect(rateLimitHeaders(checks, unknownWait, bindingIndex(unknownWait))['Retry-After']).toBe('1');

    const refused = decision(false, [result(12_000, 0, 12_000), result(0, 3, 3_000_000)]);
    const refusedHeaders = rateLimitHeaders(checks, refused, bindingIndex(refused));
    expect(refusedHeaders['X-RateLimit-Limit']).toBe('30');
    expect(refusedHeaders['X-RateLimit-Remaining']).toBe('0');
    expect(refusedHeaders['Retry-After']).toBe('12');
  });
});
