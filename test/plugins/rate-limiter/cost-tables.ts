import type { Redis } from 'ioredis';
import { ALGORITHMS } from '../../../plugins/rate-limiter/algorithms/index.ts';
import type { AlgorithmName, Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { MemoryStore } from '../../../plugins/rate-limiter/store/memory.ts';
import { peekRedis } from '../../../plugins/rate-limiter/store/redis-admin.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import type { Decision, RuleCheck, RuleResult } from '../../../plugins/rate-limiter/store/types.ts';
import { tagOf } from '../../../plugins/rate-limiter/backend/cached-refusals.ts';
import { cachedStore } from './refusal-cache-helpers.ts';

/**
 * One store as the cost and adjustment tables drive it, all on the caller's time: decide, adjust,
 * look without charging, and lose a key (evicted from memory, expired or deleted in Redis).
 */
export interface Backend {
  decide(checks: readonly RuleCheck[], now: number): Promise<Decision>;
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): Promise<void>;
  peek(checks: readonly RuleCheck[], now: number): Promise<RuleResult[]>;
  drop(key: string): Promise<void>;
}

export function memoryBackend(algorithm: AlgorithmName, store = new MemoryStore(ALGORITHMS[algorithm], 10_000)): Backend {
  return {
    decide: async (checks, now) => store.decide(checks, now),
    adjust: async (decision, checks, deltas, now) => store.adjust(decision, checks, deltas, now),
    peek: async (checks, now) => store.peek(checks, now),
    drop: async (key) => void store.forget((k) => k === key),
  };
}

export function redisBackend(client: Redis, admin: Redis, algorithm: AlgorithmName, prefix: string): Backend {
  const store = new RedisStore({ client, algorithm, prefix, timeSource: 'caller' });
  return {
    decide: (checks, now) => store.decide(checks, now),
    adjust: (decision, checks, deltas, now) => store.adjust(decision, checks, deltas, now),
    peek: (checks, now) => peekRedis(client, algorithm, prefix, checks, now),
    drop: async (key) => void (await admin.del(`${prefix}:${key}`)),
  };
}

/**
 * The refusal cache in front of the caller-time Redis store. A lost key is lost the way the operator's
 * reset loses it (Redis deletes it, the cache drops its tag): a raw DEL behind the cache's back is
 * not something it hears of (see backend/refusal-cache.ts).
 */
export function cachedRedisBackend(client: Redis, algorithm: AlgorithmName, prefix: string): Backend & { answered(): number } {
  const cached = cachedStore(client, algorithm, prefix);
  return {
    decide: (checks, now) => cached.decide(checks, now),
    adjust: (decision, checks, deltas, now) => cached.adjust(decision, checks, deltas, now),
    peek: (checks, now) => peekRedis(client, algorithm, prefix, checks, now),
    drop: async (key) => void (await cached.cache.forget({ tag: tagOf(key), member: '' }, (k) => k === key)),
    answered: () => cached.answered,
  };
}

/** A rule's result as a client sees it (whole milliseconds, as the script answers): [retry, remaining, reset]. */
export type Seen = [number, number, number];

function seen(result: RuleResult): Seen {
  return [Math.ceil(result.retryAfterMs), result.remaining, Math.ceil(result.resetMs)];
}

/**
 * A table's step, at `t` ms from the table's start:
 * - decide: request `id` with the table's checks, each tokens check charging `cost` (default 1);
 * - adjust: request `id`'s decision by `deltas` (one per check);
 * - drop: the table's first key is lost (evicted or expired);
 * - peek: how the keys stand, charging nothing.
 */
export type Step =
  | { t: number; decide: string; cost?: number }
  | { t: number; adjust: string; deltas: number[] }
  | { t: number; drop: true }
  | { t: number; peek: true };

export interface Table {
  name: string;
  /** The checks of every request (keys under one hash tag). */
  checks: RuleCheck[];
  steps: Step[];
}

/**
 * What a table's run shows, step by step: "admit"/"refuse"/"too large" and each rule's view for a
 * decision, "adjusted" for an adjustment, "dropped", and each rule's view for a peek.
 */
export type Observed = string;

function describe(prefix: string, results: RuleResult[]): string {
  return `${prefix} ${results.map((r) => seen(r).join('/')).join(' ')}`;
}

/** Runs a table on one backend from `t0`; returns one line per step. */
export async function runTable(backend: Backend, table: Table, t0: number): Promise<Observed[]> {
  const decisions = new Map<string, { decision: Decision; checks: RuleCheck[] }>();
  const lines: Observed[] = [];
  for (const step of table.steps) {
    const now = t0 + step.t;
    if ('decide' in step) {
      const checks = table.checks.map((c) => (c.rule.unit === 'tokens' ? { ...c, cost: step.cost ?? 1 } : c));
      const decision = await backend.decide(checks, now);
      decisions.set(step.decide, { decision, checks });
      const verdict = decision.allowed ? 'admit' : decision.results.some((r) => r.tooLarge) ? 'too large' : 'refuse';
      lines.push(describe(`${step.decide}: ${verdict}`, decision.results));
    } else if ('adjust' in step) {
      const { decision, checks } = decisions.get(step.adjust)!;
      await backend.adjust(decision, checks, step.deltas, now);
      lines.push(`adjusted ${step.adjust}`);
    } else if ('drop' in step) {
      await backend.drop(table.checks[0]!.key);
      lines.push('dropped');
    } else {
      lines.push(describe('peek', await backend.peek(table.checks, now)));
    }
  }
  return lines;
}

/** 10 tokens per 10 s. */
export const TOKENS: Rule = { limit: 10, windowMs: 10_000, unit: 'tokens' };
/** 3 requests per 10 s. */
export const REQUESTS: Rule = { limit: 3, windowMs: 10_000 };
