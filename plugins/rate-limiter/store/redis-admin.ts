import type { Cluster, Redis } from 'ioredis';
import type { AlgorithmName, Rule } from '../algorithms/types.ts';
import type { RuleCheck, RuleResult } from './types.ts';

/** Redis time in ms, as the decision script reads it. */
async function redisNow(client: Redis | Cluster): Promise<number> {
  const [seconds, micros] = (await client.time()) as [string | number, string | number];
  return Number(seconds) * 1000 + Number(micros) / 1000;
}

function standing(remaining: number, resetMs: number): RuleResult {
  return { retryAfterMs: 0, remaining: Math.max(0, remaining), resetMs: Math.max(0, Math.ceil(resetMs)) };
}

/** How one key stands, read from the state decide.lua writes (list of times, hash {s, c}, or a TAT). */
async function peekKey(client: Redis | Cluster, algorithm: AlgorithmName, key: string, rule: Rule, now: number): Promise<RuleResult> {
  const { limit, windowMs } = rule;
  if (algorithm === 'sliding_window') {
    const times = (await client.lrange(key, 0, -1)).map(Number);
    const used = times.filter((t) => t > now - windowMs).length;
    return standing(limit - used, used === 0 ? 0 : times[times.length - 1]! + windowMs - now);
  }
  if (algorithm === 'fixed_window') {
    const [start, count] = await client.hmget(key, 's', 'c');
    const current = Math.floor(now / windowMs) * windowMs;
    const used = start !== null && Number(start) === current ? Number(count) : 0;
    return standing(limit - used, used === 0 ? 0 : current + windowMs - now);
  }
  const interval = windowMs / limit;
  const ahead = Math.max(Number((await client.get(key)) ?? 0), now) - now;
  return standing(Math.floor((windowMs - ahead) / interval + 1e-6), ahead);
}

/** The operator's view of Redis state: reads only, on Redis time. */
export async function peekRedis(
  client: Redis | Cluster,
  algorithm: AlgorithmName,
  prefix: string,
  checks: readonly RuleCheck[],
): Promise<RuleResult[]> {
  const now = await redisNow(client);
  return Promise.all(checks.map((c) => peekKey(client, algorithm, `${prefix}:${c.key}`, c.rule, now)));
}

/** Glob characters in a key are matched literally. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Deletes the keys under one hash tag that `owns` accepts (their names without the prefix). A scan of
 * that tag only; on a Cluster, of every master (the tag's keys are all on one of them).
 */
export async function forgetRedis(
  client: Redis | Cluster,
  prefix: string,
  tag: string,
  owns: (key: string) => boolean,
): Promise<number> {
  const nodes = 'nodes' in client && typeof client.nodes === 'function' ? (client as Cluster).nodes('master') : [client as Redis];
  let deleted = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${escapeGlob(`${prefix}:${tag}`)}*`, 'COUNT', 1000);
      cursor = next;
      const mine = keys.filter((k) => owns(k.slice(prefix.length + 1)));
      if (mine.length > 0) deleted += await node.del(...mine);
    } while (cursor !== '0');
  }
  return deleted;
}
