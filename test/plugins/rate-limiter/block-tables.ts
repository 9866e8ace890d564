import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import type { AlgorithmName } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { blocksOf } from '../../../plugins/rate-limiter/blocks/memory.ts';
import type { BlockStanding } from '../../../plugins/rate-limiter/blocks/types.ts';
import { ownsKey, type KeyScope } from '../../../plugins/rate-limiter/keys.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { chargedByOthers, Policy, type PolicyCheck } from '../../../plugins/rate-limiter/policy.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { forgetRedis, peekBlocksRedis, peekRedis } from '../../../plugins/rate-limiter/store/redis-admin.ts';
import { RedisStore, type RedisClient } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Decision, RuleCheck, RuleResult } from '../../../plugins/rate-limiter/store/types.ts';
import { cachedStore } from './refusal-cache-helpers.ts';

/**
 * Escalating blocks as both stores decide them, all on the caller's time: tables of requests from a
 * few users of one tenant, with the checks the real policy builds for them, and what each store
 * answered, line by line. The same lines are expected from every algorithm (the tables stay clear of
 * where the algorithms differ: each admission is a window after the last, inside one fixed window).
 */
export interface BlockStore {
  decide(checks: readonly RuleCheck[], now: number): Promise<Decision>;
  peek(checks: readonly RuleCheck[], now: number): Promise<{ results: RuleResult[]; blocks: BlockStanding[] }>;
  /** The operator's reset of one user: their own keys (and block record), never the tenant's. */
  forget(scope: KeyScope, now: number): Promise<void>;
}

export function memoryBlockStore(algorithm: AlgorithmName): BlockStore {
  const store = new MemoryStore(ALGORITHMS[algorithm], 10_000);
  return {
    decide: async (checks, now) => store.decide(checks, now),
    peek: async (checks, now) => ({ results: store.peek(checks, now), blocks: store.peekBlocks(blocksOf(checks), now) }),
    forget: async (scope) => void store.forget((key) => ownsKey(scope, key)),
  };
}

export function redisBlockStore(client: RedisClient, algorithm: AlgorithmName, prefix: string): BlockStore {
  const store = new RedisStore({ client, algorithm, prefix, timeSource: 'caller' });
  return {
    decide: (checks, now) => store.decide(checks, now),
    peek: async (checks, now) => ({
      results: await peekRedis(client, algorithm, prefix, checks, now),
      blocks: await peekBlocksRedis(client, prefix, blocksOf(checks), now),
    }),
    forget: async (scope) => void (await forgetRedis(client, prefix, scope.tag, (key) => ownsKey(scope, key))),
  };
}

/** The refusal cache in front of the caller-time Redis store (a reset goes through it, as the operator's does). */
export function cachedBlockStore(client: RedisClient, algorithm: AlgorithmName, prefix: string): BlockStore {
  const cached = cachedStore(client, algorithm, prefix, { chargedByOthers });
  return {
    decide: (checks, now) => cached.decide(checks, now),
    peek: async (checks, now) => ({
      results: await peekRedis(client, algorithm, prefix, checks, now),
      blocks: await peekBlocksRedis(client, prefix, blocksOf(checks), now),
    }),
    forget: async (scope) => void (await cached.cache.forget(scope, (key) => ownsKey(scope, key))),
  };
}

/** A step at `t` ms from the table's start: `who` sends a message, is looked at, or is reset. */
export type BlockStep = { t: number; send: string } | { t: number; peek: string } | { t: number; reset: string };

export interface BlockTable {
  name: string;
  /** The limiter's options (by_user, by_tenant, block). */
  config: Record<string, unknown>;
  steps: BlockStep[];
  /** What the table shows on every backend and algorithm. */
  expected: string[];
}

/** Every user is a member of tenant "acme" (with a tenant rule, their keys live under its tag). */
const TENANT = 'acme';

function describeDecision(who: string, decision: Decision): string {
  const blocked = decision.blocked;
  if (blocked !== undefined) {
    return `${who}: blocked ${blocked.block.subject} ${Math.ceil(blocked.retryAfterMs)} L${blocked.level}${blocked.started ? ' started' : ''}`;
  }
  return `${who}: ${decision.allowed ? 'admit' : 'refuse'}`;
}

function describeStanding(who: string, results: RuleResult[], checks: readonly PolicyCheck[], blocks: BlockStanding[]): string {
  const rules = results.map((r, i) => `${checks[i]!.rule.label} ${r.remaining}`).join(', ');
  const standings = blocks.map(
    (b) => `${b.block.subject} L${b.level} ${b.retryAfterMs > 0 ? `blocked ${Math.ceil(b.retryAfterMs)}` : 'free'} strikes ${b.strikes}`,
  );
  return `${who}: ${rules} | ${standings.join(', ')}`;
}

/** Runs a table on one store from `t0`; returns one line per step. */
export async function runBlockTable(store: BlockStore, table: BlockTable, t0: number): Promise<string[]> {
  const policy = new Policy(RateLimiterOptions.parse(table.config));
  const lines: string[] = [];
  for (const step of table.steps) {
    const now = t0 + step.t;
    const who = 'send' in step ? step.send : 'peek' in step ? step.peek : step.reset;
    const subject = policy.subject('http', who, 'by_tenant' in table.config ? TENANT : undefined);
    const checks = policy.promptPlan(subject).checks;
    if ('send' in step) {
      lines.push(describeDecision(who, await store.decide(checks, now)));
    } else if ('peek' in step) {
      const { results, blocks } = await store.peek(checks, now);
      lines.push(describeStanding(who, results, checks, blocks));
    } else {
      await store.forget(subject.scope, now);
      lines.push(`${who}: reset`);
    }
  }
  return lines;
}

const DAY = 86_400_000;
const ESCALATING = { by_user: '1/10s', block: { after: 2, durations: ['1m', '10m', '1h'], decay_after: '1d' } };

/** Three refusals in a row from t: the third starts a block (after: 2). */
const flood = (who: string, t: number): BlockStep[] => [
  { t, send: who },
  { t: t + 1, send: who },
  { t: t + 2, send: who },
  { t: t + 3, send: who },
];

export const BLOCK_TABLES: BlockTable[] = [
  {
    name: 'blocks grow 1m, 10m, 1h, then stay at 1h',
    config: ESCALATING,
    steps: [
      ...flood('alice', 0),
      { t: 4, send: 'alice' },
      { t: 60_002, send: 'alice' },
      ...flood('alice', 60_003),
      { t: 60_010, peek: 'alice' },
      ...flood('alice', 660_006),
      ...flood('alice', 4_260_009),
      { t: 4_260_013, peek: 'alice' },
    ],
    expected: [
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
      'alice: blocked user 59999 L1',
      'alice: blocked user 1 L1',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 600000 L2 started',
      'alice: user 0 | user L2 blocked 599996 strikes 0',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 3600000 L3 started',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 3600000 L3 started',
      'alice: user 0 | user L3 blocked 3599999 strikes 0',
    ],
  },
  {
    name: 'the level decays one step per decay_after after a block has ended',
    config: ESCALATING,
    steps: [
      ...flood('alice', 0),
      ...flood('alice', 60_003),
      // The 10 minute block ends at 660 006: a day later the level is 1, two more days later 0.
      { t: 660_006 + DAY - 1, peek: 'alice' },
      { t: 660_006 + DAY, peek: 'alice' },
      ...flood('alice', 660_006 + DAY + 4),
      // That block ends at 660 013 + a day + 10 minutes; two days later the level is 0.
      { t: 660_013 + DAY + 600_000 + 2 * DAY, peek: 'alice' },
      ...flood('alice', 660_013 + DAY + 600_000 + 2 * DAY + 1),
    ],
    expected: [
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 600000 L2 started',
      'alice: user 1 | user L2 free strikes 0',
      'alice: user 1 | user L1 free strikes 0',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      // From level 1, one up: 10 minutes, not an hour.
      'alice: blocked user 600000 L2 started',
      'alice: user 1 | user L0 free strikes 0',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
    ],
  },
  {
    name: 'strikes lapse when the refusals end: a user who waits is not blocked',
    config: ESCALATING,
    steps: [
      { t: 0, send: 'alice' },
      { t: 1, send: 'alice' },
      { t: 2, send: 'alice' },
      { t: 3, peek: 'alice' },
      // Admitted again at 10 000, when the refusals' retry time has come: the two strikes are gone.
      { t: 10_000, peek: 'alice' },
      ...flood('alice', 10_000),
    ],
    expected: [
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: user 0 | user L0 free strikes 2',
      'alice: user 1 | user L0 free strikes 0',
      'alice: admit',
      'alice: refuse',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
    ],
  },
  {
    name: 'a blocked user is refused without charging anything, even when the rules would admit',
    config: { by_user: '2/10s', block: { after: 0, durations: ['30s'] } },
    steps: [
      { t: 0, send: 'alice' },
      { t: 1, send: 'alice' },
      { t: 2, send: 'alice' },
      { t: 3, peek: 'alice' },
      { t: 20_000, send: 'alice' },
      { t: 20_000, send: 'alice' },
      { t: 20_001, peek: 'alice' },
      { t: 30_002, send: 'alice' },
      { t: 30_003, send: 'alice' },
      { t: 30_004, send: 'alice' },
    ],
    expected: [
      'alice: admit',
      'alice: admit',
      // after: 0: the first refusal blocks.
      'alice: blocked user 30000 L1 started',
      'alice: user 0 | user L1 blocked 29999 strikes 0',
      'alice: blocked user 10002 L1',
      'alice: blocked user 10002 L1',
      // Nothing was charged while blocked: the full limit is there.
      'alice: user 2 | user L1 blocked 10001 strikes 0',
      'alice: admit',
      'alice: admit',
      // One level only: it repeats.
      'alice: blocked user 30000 L1 started',
    ],
  },
  {
    name: "a user's block is theirs alone; a tenant's block holds every member",
    config: {
      by_user: '1/10s',
      by_tenant: '3/10s',
      block: { after: 1, durations: ['1m', '10m'], subjects: ['user', 'tenant'] },
    },
    steps: [
      { t: 0, send: 'alice' },
      { t: 1, send: 'alice' },
      { t: 2, send: 'alice' },
      { t: 3, send: 'bob' },
      { t: 4, send: 'carol' },
      { t: 5, send: 'bob' },
      { t: 6, send: 'carol' },
      { t: 7, send: 'dave' },
      { t: 8, send: 'alice' },
      { t: 9, peek: 'carol' },
    ],
    expected: [
      'alice: admit',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
      'bob: admit',
      'carol: admit',
      // Both of bob's rules refuse: a strike for bob, and one for the tenant.
      'bob: refuse',
      // The tenant's second strike: the whole tenant is blocked (carol's own strike is her first).
      'carol: blocked tenant 60000 L1 started',
      'dave: blocked tenant 59999 L1',
      // Alice is blocked twice over; the tenant's block ends later.
      'alice: blocked tenant 59998 L1',
      'carol: user 0, tenant 0 | user L0 free strikes 1, tenant L1 blocked 59997 strikes 0',
    ],
  },
  {
    // Calendar windows go to Redis after the other rules of a request: each rule's block must follow it.
    name: 'blocks beside a calendar window: each rule counts towards its own subject',
    config: {
      by_user: { rate: ['1/10s', '100/calendar_day'] },
      by_tenant: '3/10s',
      block: { after: 1, durations: ['1m'], subjects: ['user', 'tenant'] },
    },
    steps: [
      { t: 0, send: 'alice' },
      { t: 1, send: 'alice' },
      { t: 2, send: 'alice' },
      { t: 3, send: 'bob' },
      { t: 4, send: 'carol' },
      { t: 5, send: 'bob' },
      { t: 6, send: 'carol' },
      { t: 7, peek: 'carol' },
    ],
    expected: [
      'alice: admit',
      'alice: refuse',
      'alice: blocked user 60000 L1 started',
      'bob: admit',
      'carol: admit',
      'bob: refuse',
      'carol: blocked tenant 60000 L1 started',
      'carol: user-10s 0, user-calendar_day 99, tenant 0 | user L0 free strikes 1, tenant L1 blocked 59999 strikes 0',
    ],
  },
  {
    name: "a reset frees the user and forgets their level, never the tenant's block",
    config: {
      by_user: '1/10s',
      by_tenant: '10/10s',
      block: { after: 0, durations: ['1m', '10m'], subjects: ['user', 'tenant'] },
    },
    steps: [
      { t: 0, send: 'alice' },
      { t: 1, send: 'alice' },
      { t: 2, send: 'alice' },
      { t: 3, reset: 'alice' },
      { t: 4, peek: 'alice' },
      { t: 5, send: 'alice' },
      { t: 6, send: 'alice' },
    ],
    expected: [
      'alice: admit',
      'alice: blocked user 60000 L1 started',
      'alice: blocked user 59999 L1',
      'alice: reset',
      // The tenant still counts alice's first message: a reset clears the user's own state only.
      'alice: user 1, tenant 9 | user L0 free strikes 0, tenant L0 free strikes 0',
      'alice: admit',
      // Level 0 again: the first block's length, not the second's.
      'alice: blocked user 60000 L1 started',
    ],
  },
];
