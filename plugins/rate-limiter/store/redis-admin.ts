import type { Cluster, Redis } from 'ioredis';
import { ALGORITHMS, counterFor } from '../algorithms/index.ts';
import type { AlgorithmName, Rule } from '../algorithms/types.ts';
import { standing } from '../blocks/escalation.ts';
import type { BlockCheck, BlockStanding, BlockState } from '../blocks/types.ts';
import { decodeState, queueStateRead } from './redis-state.ts';
import type { RuleCheck, RuleResult } from './types.ts';

/** Redis time in ms, as the decision script reads it. */
export async function redisNow(client: Redis | Cluster): Promise<number> {
  const [seconds, micros] = (await client.time()) as [string | number, string | number];
  return Number(seconds) * 1000 + Number(micros) / 1000;
}

export { decodeTokenLog, TOKEN_SLOT_BYTES } from './redis-state.ts';

/** One key's state as the algorithm that decide.lua mirrors keeps it (see redis-state.ts). */
async function readState(client: Redis | Cluster, algorithm: AlgorithmName, key: string, rule: Rule): Promise<unknown> {
  const pipeline = client.pipeline();
  queueStateRead(pipeline, algorithm, key, rule);
  const [[error, raw]] = (await pipeline.exec()) as [[Error | null, unknown]];
  if (error) throw error;
  return decodeState(algorithm, rule, raw);
}

/** How one key stands, by the same standing() the memory store answers with, in whole milliseconds. */
async function peekKey(client: Redis | Cluster, algorithm: AlgorithmName, key: string, rule: Rule, now: number): Promise<RuleResult> {
  const state = await readState(client, algorithm, key, rule);
  const { remaining, resetMs } = counterFor(ALGORITHMS[algorithm], rule).standing(state, now, rule);
  return { retryAfterMs: 0, remaining, resetMs: Math.ceil(resetMs) };
}

/**
 * The operator's view of Redis state: reads only, on Redis time (or at `now`, for tests that decide
 * on caller time).
 */
export async function peekRedis(
  client: Redis | Cluster,
  algorithm: AlgorithmName,
  prefix: string,
  checks: readonly RuleCheck[],
  now?: number,
): Promise<RuleResult[]> {
  const at = now ?? (await redisNow(client));
  return Promise.all(checks.map((c) => peekKey(client, algorithm, `${prefix}:${c.key}`, c.rule, at)));
}

/** A block record as blocks.lua writes it: the hash {n, x, l, u}; undefined when there is none. */
async function readBlock(client: Redis | Cluster, key: string): Promise<BlockState | undefined> {
  const [n, x, l, u] = await client.hmget(key, 'n', 'x', 'l', 'u');
  if (n === null && l === null) return undefined;
  return { strikes: Number(n ?? 0), strikesUntil: Number(x ?? 0), level: Number(l ?? 0), until: Number(u ?? 0) };
}

/** How each subject's block stands in Redis at `now` (Redis time, or the caller's), read only. */
export async function peekBlocksRedis(client: Redis | Cluster, prefix: string, blocks: readonly BlockCheck[], now: number): Promise<BlockStanding[]> {
  return Promise.all(blocks.map(async (block) => standing(block, await readBlock(client, `${prefix}:${block.key}`), now)));
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
