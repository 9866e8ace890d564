import { readFileSync } from 'node:fs';
import type { RedisClient } from '../store/redis.ts';

const SLOTS_LUA = readFileSync(new URL('./slots.lua', import.meta.url), 'utf8');
const COMMAND = 'floodgateSlots';

type SlotsCommand = (...args: (string | number)[]) => Promise<unknown>;

/** Key counts whose commands are defined up front: a call caps a user and a tenant, so 1 or 2. */
const EAGER_KEY_COUNTS = 4;

/** A held slot as a renewal names it. */
export interface LeaseId {
  readonly id: string;
  readonly keys: readonly string[];
}

/**
 * slots.lua as ioredis commands, and the one place that knows its arguments (see the script). There
 * is one command per number of keys, so that ioredis routes a call by its first key on a Cluster (see
 * RedisStore.command()), and one whose key count comes first, for renewals batched on one server.
 */
export class SlotsScript {
  private readonly commands = new Map<number, SlotsCommand>();
  /** On a Cluster, one call only reaches the keys of one hash slot. */
  readonly cluster: boolean;

  constructor(private readonly client: RedisClient) {
    this.cluster = Boolean((client as { isCluster?: boolean }).isCluster);
    // Every command is defined before the client sends anything. An auto-pipeline made before a
    // command was defined lacks it: the call is rejected, yet its callback stays in the pipeline,
    // and when that pipeline runs ioredis throws an uncaught TypeError ("results[i] is not iterable").
    for (let keys = 0; keys <= EAGER_KEY_COUNTS; keys++) this.command(keys);
  }

  /**
   * Takes a slot `id` on every key (each with its limit) or on none. Answers 0, or the (1-based) index
   * of the first full key.
   */
  acquire(keys: readonly string[], id: string, leaseMs: number, limits: readonly number[]): Promise<unknown> {
    return this.call(keys, 'acquire', id, leaseMs, ...limits);
  }

  /** Gives slot `id` back on its keys. */
  release(keys: readonly string[], id: string): Promise<unknown> {
    return this.call(keys, 'release', id);
  }

  /**
   * Extends the leases of these slots (all on one server, or one slot's keys under one hash tag).
   * Answers, per slot, 1 if every key still held it, else 0.
   */
  async renew(slots: readonly LeaseId[], leaseMs: number): Promise<unknown[]> {
    const keys: string[] = [];
    const args: (string | number)[] = ['renew', leaseMs];
    for (const slot of slots) {
      keys.push(...slot.keys);
      args.push(slot.id, slot.keys.length);
    }
    // One slot's keys share a hash slot; several slots in one call only on a single server.
    const reply = slots.length === 1 ? await this.call(keys, ...args) : await this.command(0)(keys.length, ...keys, ...args);
    return reply as unknown[];
  }

  /** How many unexpired leases a key holds. */
  async count(key: string): Promise<number> {
    return Number(await this.call([key], 'count'));
  }

  /** The script as a command that knows how many of its arguments are keys (0: the key count comes first). */
  private command(keys: number): SlotsCommand {
    let command = this.commands.get(keys);
    if (command === undefined) {
      const { client } = this;
      const name = keys === 0 ? `${COMMAND}Batch` : `${COMMAND}${keys}`;
      if (typeof (client as unknown as Record<string, unknown>)[name] !== 'function') {
        client.defineCommand(name, keys === 0 ? { lua: SLOTS_LUA } : { lua: SLOTS_LUA, numberOfKeys: keys });
      }
      command = (client as unknown as Record<string, SlotsCommand>)[name]!.bind(client);
      this.commands.set(keys, command);
    }
    return command;
  }

  private call(keys: readonly string[], ...args: (string | number)[]): Promise<unknown> {
    try {
      return this.command(keys.length)(...keys, ...args);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
