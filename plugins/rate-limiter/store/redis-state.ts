import type { ChainableCommander } from 'ioredis';
import type { AlgorithmName, Rule } from '../algorithms/types.ts';
import type { RedisClient } from './redis.ts';

/** Bytes of one slot of a tokens log in Redis: its end (ms) and its tokens, big-endian doubles. */
export const TOKEN_SLOT_BYTES = 16;

/** A tokens log as decide.lua stores it, as the flat array sliding-log.ts keeps ([e0, c0, e1, c1, ...]). */
export function decodeTokenLog(value: Buffer): number[] {
  const log: number[] = [];
  for (let at = 0; at + TOKEN_SLOT_BYTES <= value.length; at += TOKEN_SLOT_BYTES) {
    log.push(value.readDoubleBE(at), value.readDoubleBE(at + 8));
  }
  return log;
}

/**
 * Queues the read of one key's state on `commands` (a pipeline or a transaction): the list of times
 * (the ring), the log of slots (tokens rules of the sliding window), the hash {s, c} (fixed and
 * calendar windows), or the TAT, as decide.lua writes them (see shared.lua).
 */
export function queueStateRead(commands: ChainableCommander, algorithm: AlgorithmName, key: string, rule: Rule): void {
  if (rule.calendar !== undefined) {
    commands.hmget(key, 's', 'c');
  } else if (algorithm === 'sliding_window') {
    if (rule.unit === 'tokens') commands.getBuffer(key);
    else commands.lrange(key, 0, -1);
  } else if (algorithm === 'fixed_window') {
    commands.hmget(key, 's', 'c');
  } else {
    commands.get(key);
  }
}

/** What queueStateRead() read, as the algorithm that decide.lua mirrors keeps it (undefined: nothing recorded). */
export function decodeState(algorithm: AlgorithmName, rule: Rule, raw: unknown): unknown {
  if (rule.calendar !== undefined) {
    const [start, count] = raw as (string | null)[];
    return start === null || start === undefined ? undefined : { start: Number(start), count: Number(count) };
  }
  if (algorithm === 'sliding_window') {
    if (rule.unit === 'tokens') return raw === null ? undefined : decodeTokenLog(raw as Buffer);
    const times = (raw as string[]).map(Number);
    return times.length === 0 ? undefined : { times, start: 0 };
  }
  if (algorithm === 'fixed_window') {
    const [start, count] = raw as (string | null)[];
    return start === null || start === undefined ? undefined : { window: Math.round(Number(start) / rule.windowMs), count: Number(count) };
  }
  return raw === null ? undefined : Number(raw);
}

/** One key read by readStates(): its name in Redis and its rule. */
export interface StateKey {
  key: string;
  rule: Rule;
}

/**
 * Several keys' states read at one instant (one MULTI, so no script runs between the reads), with
 * the server's time (TIME) of that instant. The keys must share a hash slot on a Cluster, as a
 * request's keys do.
 */
export async function readStates(client: RedisClient, algorithm: AlgorithmName, keys: readonly StateKey[]): Promise<{ states: unknown[]; serverTime: number }> {
  const transaction = client.multi();
  for (const { key, rule } of keys) queueStateRead(transaction, algorithm, key, rule);
  transaction.time();
  const replies = await transaction.exec();
  if (replies === null) throw new Error('redis aborted the state read');
  const values = replies.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
  const [seconds, micros] = values[keys.length] as [string, string];
  return {
    states: keys.map(({ rule }, i) => decodeState(algorithm, rule, values[i])),
    serverTime: Number(seconds) * 1000 + Number(micros) / 1000,
  };
}
