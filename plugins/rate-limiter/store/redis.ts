import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { AlgorithmName } from '../algorithms/types.ts';
import type { Decision, RateStore, RuleCheck, RuleResult } from './types.ts';

/** The decision script: every rule of a request checked and charged in one atomic step. */
const DECIDE_LUA = readFileSync(new URL('./decide.lua', import.meta.url), 'utf8');
const COMMAND = 'floodgateDecide';

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

/**
 * Shared state in Redis: one script call (EVALSHA, reloaded on NOSCRIPT by ioredis) per request,
 * deciding every rule together. Keys carry TTLs, so Redis holds nothing past its window.
 */
export class RedisStore implements RateStore {
  /** One command per number of keys (see command()). */
  private readonly commands = new Map<number, DecideCommand>();
  private readonly useCallerTime: boolean;

  constructor(private readonly options: RedisStoreOptions) {
    this.useCallerTime = options.timeSource === 'caller';
  }

  /**
   * The script as a command that knows how many of its arguments are keys. ioredis routes an
   * auto-pipelined command by its first key, and a command defined without numberOfKeys has the key
   * count as its first argument: on a Cluster every decision would be batched under the slot of "1",
   * "2" or "3", and a batch of keys from different slots fails as a whole.
   */
  private command(keys: number): DecideCommand {
    let command = this.commands.get(keys);
    if (command === undefined) {
      const { client } = this.options;
      const name = `${COMMAND}${keys}`;
      if (typeof (client as unknown as Record<string, unknown>)[name] !== 'function') {
        client.defineCommand(name, { lua: DECIDE_LUA, numberOfKeys: keys });
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

  async decide(checks: readonly RuleCheck[], now: number): Promise<Decision> {
    const { prefix, algorithm } = this.options;
    const args: (string | number)[] = [];
    for (const check of checks) args.push(`${prefix}:${check.key}`);
    args.push(algorithm, this.useCallerTime ? now : '');
    for (const check of checks) args.push(check.rule.limit, check.rule.windowMs);
    const reply = await this.command(checks.length)(...args);
    const results: RuleResult[] = new Array(checks.length);
    for (let i = 0; i < checks.length; i++) {
      const at = 2 + 3 * i;
      results[i] = { retryAfterMs: Number(reply[at]), remaining: Number(reply[at + 1]), resetMs: Number(reply[at + 2]) };
    }
    return { allowed: Number(reply[0]) === 1, retryAfterMs: Number(reply[1]), results };
  }

  async close(): Promise<void> {
    // The client is owned by whoever created it (see redis-client.ts).
  }
}
