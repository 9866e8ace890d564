import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { AlgorithmName } from '../algorithms/types.ts';
import type { Decision, RateStore, RuleCheck, RuleResult } from './types.ts';

/** The decision script: every rule of a request checked and charged in one atomic step. */
const DECIDE_LUA = readFileSync(new URL('./decide.lua', import.meta.url), 'utf8');
const COMMAND = 'floodgateDecide';
/** Most requests one script call decides (a batch bigger than that goes as several calls). */
const MAX_BATCH = 512;

export type RedisClient = Redis | Cluster;

type DecideCommand = (...args: (string | number)[]) => Promise<number[]>;

export interface RedisStoreOptions {
  client: RedisClient;
  algorithm: AlgorithmName;
  /** Prefix of every key, e.g. "fg" gives "fg:{http:alice}u:". */
  prefix: string;
  /**
   * 'redis': decisions use the Redis server's clock (TIME), so gateway clocks cannot skew them.
   * 'caller': the `now` given to decide(), for tests that replay the same arrivals on every store.
   */
  timeSource?: 'redis' | 'caller';
}

interface Pending {
  checks: readonly RuleCheck[];
  now: number;
  resolve(decision: Decision): void;
  reject(error: unknown): void;
}

/**
 * Shared state in Redis: one script call (EVALSHA, reloaded on NOSCRIPT by ioredis) decides every
 * rule of a request together. Keys carry TTLs, so Redis holds nothing past its window.
 *
 * On a single server, the decisions asked for in the same tick go to Redis as one script call that
 * decides them one after another (each request still all-or-nothing, in the order asked), like the
 * pipelined calls they would otherwise be, but with one command's cost instead of one per request:
 * on both sides (the client's command, promise and reply; the server's call, TIME and reply), that
 * per-command cost was most of a decision's. On a Cluster, keys of different users live in different
 * slots and one call cannot span them, so each request is its own call there.
 */
export class RedisStore implements RateStore {
  /** One command per number of keys (see command()). */
  private readonly commands = new Map<number, DecideCommand>();
  private readonly useCallerTime: boolean;
  private readonly batched: boolean;
  private queue: Pending[] = [];

  constructor(private readonly options: RedisStoreOptions) {
    this.useCallerTime = options.timeSource === 'caller';
    this.batched = !(options.client as { isCluster?: boolean }).isCluster;
  }

  /**
   * The script as a command that knows how many of its arguments are keys (0: the key count comes
   * first, for batches). ioredis routes an auto-pipelined command by its first key, and a command
   * defined without numberOfKeys has the key count as its first argument: on a Cluster every decision
   * would be batched under the slot of "1", "2" or "3", and a batch of keys from different slots fails
   * as a whole.
   */
  private command(keys: number): DecideCommand {
    let command = this.commands.get(keys);
    if (command === undefined) {
      const { client } = this.options;
      const name = keys === 0 ? `${COMMAND}Batch` : `${COMMAND}${keys}`;
      if (typeof (client as unknown as Record<string, unknown>)[name] !== 'function') {
        client.defineCommand(name, keys === 0 ? { lua: DECIDE_LUA } : { lua: DECIDE_LUA, numberOfKeys: keys });
      }
      command = (client as unknown as Record<string, DecideCommand>)[name]!.bind(client);
      this.commands.set(keys, command);
    }
    return command;
  }

  /** State lives in Redis; this process holds none. */
  get size(): number {
    return 0;
  }

  decide(checks: readonly RuleCheck[], now: number): Promise<Decision> {
    if (!this.batched) return this.decideAlone(checks, now);
    return new Promise((resolve, reject) => {
      // The batch goes when this tick's work is done (as ioredis's own auto-pipeline does).
      if (this.queue.length === 0) process.nextTick(this.flush);
      this.queue.push({ checks, now, resolve, reject });
    });
  }

  private async decideAlone(checks: readonly RuleCheck[], now: number): Promise<Decision> {
    const { prefix, algorithm } = this.options;
    const args: (string | number)[] = [];
    for (const check of checks) args.push(`${prefix}:${check.key}`);
    args.push(algorithm, 1);
    this.pushRequest(args, checks, now);
    const reply = await this.command(checks.length)(...args);
    if (Number(reply[0]) === -1) throw new Error(String(reply[1]));
    return decision(reply, 0, checks.length);
  }

  private readonly flush = (): void => {
    const queue = this.queue;
    this.queue = [];
    for (let from = 0; from < queue.length; from += MAX_BATCH) this.send(queue.slice(from, from + MAX_BATCH));
  };

  private send(batch: Pending[]): void {
    const { prefix, algorithm } = this.options;
    const args: (string | number)[] = [0];
    let keys = 0;
    for (const { checks } of batch) {
      for (const check of checks) args.push(`${prefix}:${check.key}`);
      keys += checks.length;
    }
    args[0] = keys;
    args.push(algorithm, batch.length);
    for (const { checks, now } of batch) this.pushRequest(args, checks, now);
    let reply: Promise<number[]>;
    try {
      reply = this.command(0)(...args);
    } catch (error) {
      // Called from process.nextTick: a throw here would take the process down.
      for (const { reject } of batch) reject(error);
      return;
    }
    reply.then(
      (reply) => {
        let at = 0;
        for (const { checks, resolve, reject } of batch) {
          // A request the script could not decide fails alone; the others in the call stand.
          if (Number(reply[at]) === -1) reject(new Error(String(reply[at + 1])));
          else resolve(decision(reply, at, checks.length));
          at += 3 * checks.length;
        }
      },
      (error: unknown) => {
        for (const { reject } of batch) reject(error);
      },
    );
  }

  private pushRequest(args: (string | number)[], checks: readonly RuleCheck[], now: number): void {
    args.push(this.useCallerTime ? now : '', checks.length);
    for (const check of checks) args.push(check.rule.limit, check.rule.windowMs);
  }

  async close(): Promise<void> {
    // The client is owned by whoever created it (see redis-client.ts).
  }
}

/** A request's decision from its rules' triples (retry after, remaining, reset) in the script's reply. */
function decision(reply: number[], at: number, rules: number): Decision {
  const results: RuleResult[] = new Array(rules);
  let retryAfterMs = 0;
  for (let i = 0; i < rules; i++) {
    const wait = Number(reply[at]);
    results[i] = { retryAfterMs: wait, remaining: Number(reply[at + 1]), resetMs: Number(reply[at + 2]) };
    if (wait > retryAfterMs) retryAfterMs = wait;
    at += 3;
  }
  return { allowed: retryAfterMs === 0, retryAfterMs, results };
}
