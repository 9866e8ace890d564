import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { systemClock } from '../../../src/plugin-sdk.ts';
import type { AlgorithmName, Rule } from '../algorithms/types.ts';
import { blocksOf } from '../blocks/memory.ts';
import type { BlockCheck, BlockPolicy, BlockVerdict } from '../blocks/types.ts';
import { costOf, deltaOf, type Decision, type RateStore, type RuleCheck, type RuleResult } from './types.ts';

/** What both scripts start with: the key layouts and the helpers that read and write them. */
const SHARED_LUA = readFileSync(new URL('./shared.lua', import.meta.url), 'utf8');

/** A script as Redis runs it: shared.lua, then the script's own text (after any parts it uses). */
function script(...files: string[]): string {
  return SHARED_LUA + files.map((file) => readFileSync(new URL(file, import.meta.url), 'utf8')).join('');
}

/** The decision script: every rule of a request checked and charged in one atomic step (blocks.lua: escalating blocks). */
export const DECIDE_LUA = script('./blocks.lua', './decide.lua');
const COMMAND = 'floodgateDecide';
/** The adjustment script: what one admitted request charged, changed in one atomic step. */
export const ADJUST_LUA = script('./adjust.lua');
const ADJUST_COMMAND = 'floodgateAdjust';
/** Most requests one script call decides (a batch bigger than that goes as several calls). */
const MAX_BATCH = 512;

export type RedisClient = Redis | Cluster;

/** Both scripts' replies: decide.lua's is an array of numbers and strings (see there). */
type DecideCommand = (...args: (string | number)[]) => Promise<(number | string)[]>;
type AdjustCommand = (...args: (string | number)[]) => Promise<number>;

export interface RedisStoreOptions {
  client: RedisClient;
  algorithm: AlgorithmName;
  /** Prefix of every key, e.g. "fg" gives "fg:{http:alice}u:". */
  prefix: string;
  /**
   * 'redis': decisions use the Redis server's clock (TIME), so gateway clocks cannot skew them.
   * 'caller': the `now` given to decide() and adjust(), for tests that replay the same arrivals on
   * every store (an adjust() given no time then uses TIME).
   */
  timeSource?: 'redis' | 'caller';
}

/** An adjustment waiting for the decisions asked before it (it must not reach Redis ahead of them). */
interface PendingAdjust {
  adjust: (string | number)[];
  resolve(): void;
  reject(error: unknown): void;
}

interface Pending {
  /** As sent: calendar windows last (see calendarLast). */
  checks: readonly RuleCheck[];
  /** The distinct blocks of the checks (see blocks.lua). */
  blocks: readonly BlockCheck[];
  /** Where each sent check is in the request's own order; absent when that is the order sent. */
  order: readonly number[] | undefined;
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
 *
 * A decision's `charge` is the time the script decided at (the server's TIME, returned exactly, or
 * the caller's time under timeSource 'caller'); adjust() hands it back to adjust.lua, which finds
 * the charge by it. An adjustment is one script call of its own, sent in the order asked relative
 * to decisions (ioredis's auto-pipeline sends the calls of one tick together).
 */
export class RedisStore implements RateStore {
  /** One command per number of keys (see command()). */
  private readonly commands = new Map<number, DecideCommand>();
  private readonly adjustCommands = new Map<number, AdjustCommand>();
  private readonly useCallerTime: boolean;
  private readonly batched: boolean;
  private queue: (Pending | PendingAdjust)[] = [];

  constructor(private readonly options: RedisStoreOptions) {
    this.useCallerTime = options.timeSource === 'caller';
    this.batched = !(options.client as { isCluster?: boolean }).isCluster;
    if (this.batched) {
      // Defined before any call: ioredis's auto-pipeline copies the scripts a client knows when it
      // starts a pipeline, and a script defined later in the same tick would be missing from it
      // (the call fails, and ioredis then throws from its own callback).
      this.command(0);
      this.adjustCommand(0);
    }
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
      command = defined<DecideCommand>(this.options.client, COMMAND, DECIDE_LUA, keys);
      this.commands.set(keys, command);
    }
    return command;
  }

  private adjustCommand(keys: number): AdjustCommand {
    let command = this.adjustCommands.get(keys);
    if (command === undefined) {
      command = defined<AdjustCommand>(this.options.client, ADJUST_COMMAND, ADJUST_LUA, keys);
      this.adjustCommands.set(keys, command);
    }
    return command;
  }

  /** State lives in Redis; this process holds none. */
  get size(): number {
    return 0;
  }

  decide(checks: readonly RuleCheck[], now: number): Promise<Decision> {
    // A bad cost fails this request now, not the batch it would have gone out with.
    for (const check of checks) {
      if (check.rule.unit === 'tokens' && check.cost !== undefined) {
        try {
          costOf(check);
        } catch (error) {
          return Promise.reject(error);
        }
      }
    }
    const order = calendarLast(checks);
    const sent = order === undefined ? checks : order.map((i) => checks[i]!);
    const blocks = blocksOf(sent);
    if (!this.batched) return this.decideAlone(sent, order, blocks, now);
    return new Promise((resolve, reject) => {
      // The batch goes when this tick's work is done (as ioredis's own auto-pipeline does).
      if (this.queue.length === 0) process.nextTick(this.flush);
      this.queue.push({ checks: sent, order, blocks, now, resolve, reject });
    });
  }

  private async decideAlone(checks: readonly RuleCheck[], order: readonly number[] | undefined, blocks: readonly BlockCheck[], now: number): Promise<Decision> {
    const reply = await this.command(checks.length + blocks.length)(...this.batchArgs([{ checks, blocks, now }], false));
    if (Number(reply[1]) === -1) throw new Error(String(reply[2]));
    return decision(reply, 1, checks.length, this.chargeTime(reply, now), order, blocks.length > 0 ? blocks : undefined);
  }

  async adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now?: number): Promise<void> {
    const at = decision.charge;
    if (!decision.allowed || typeof at !== 'number') return;
    const { prefix, algorithm } = this.options;
    const keys: string[] = [];
    const rest: (string | number)[] = [algorithm, this.useCallerTime && now !== undefined ? now : '', at];
    // Calendar windows, after every key's quintuple (see adjust.lua): which key, the start of the
    // period it was charged in, and the periods around the gateway's time.
    let calendars: (string | number)[] | undefined;
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i]!;
      const tokens = check.rule.unit === 'tokens';
      const cost = tokens ? costOf(check) : 1;
      const delta = deltaOf(deltas[i], cost);
      if (delta === 0) continue;
      keys.push(`${prefix}:${check.key}`);
      rest.push(check.rule.limit, check.rule.windowMs, tokens ? 't' : 'r', cost, delta);
      const calendar = check.rule.calendar;
      if (calendar !== undefined) {
        (calendars ??= []).push(keys.length, calendar.periodAt(at).start, ...calendar.around(now ?? systemClock.now()));
      }
    }
    if (keys.length === 0) return;
    if (calendars !== undefined) rest.push(calendars.length / 6, ...calendars);
    // On a Cluster the command must know its key count, for ioredis to route it by its first key.
    if (!this.batched) {
      await this.adjustCommand(keys.length)(...keys, ...rest);
      return;
    }
    // On a single server, one command takes any number of keys (their count first). Decisions asked
    // earlier in this tick are still queued: the adjustment goes after them, in the order asked (a
    // refund must not reach Redis before a decision that was made before it).
    const args = [keys.length, ...keys, ...rest];
    if (this.queue.length === 0) {
      await this.adjustCommand(0)(...args);
      return;
    }
    await new Promise<void>((resolve, reject) => this.queue.push({ adjust: args, resolve, reject }));
  }

  private readonly flush = (): void => {
    const queue = this.queue;
    this.queue = [];
    let batch: Pending[] = [];
    for (const item of queue) {
      if ('adjust' in item) {
        if (batch.length > 0) this.send(batch);
        batch = [];
        this.sendAdjust(item);
        continue;
      }
      batch.push(item);
      if (batch.length === MAX_BATCH) {
        this.send(batch);
        batch = [];
      }
    }
    if (batch.length > 0) this.send(batch);
  };

  private sendAdjust({ adjust, resolve, reject }: PendingAdjust): void {
    try {
      this.adjustCommand(0)(...adjust).then(() => resolve(), reject);
    } catch (error) {
      // Called from process.nextTick: a throw here would take the process down.
      reject(error);
    }
  }

  private send(batch: Pending[]): void {
    let reply: Promise<(number | string)[]>;
    try {
      reply = this.command(0)(...this.batchArgs(batch, true));
    } catch (error) {
      // Called from process.nextTick: a throw here would take the process down.
      for (const { reject } of batch) reject(error);
      return;
    }
    const withBlocks = batch.some((pending) => pending.blocks.length > 0);
    reply.then(
      (reply) => {
        let at = 1;
        for (const { checks, order, blocks, now, resolve, reject } of batch) {
          // A request the script could not decide fails alone; the others in the call stand.
          if (Number(reply[at]) === -1) reject(new Error(String(reply[at + 1])));
          else resolve(decision(reply, at, checks.length, this.chargeTime(reply, now), order, withBlocks ? blocks : undefined));
          at += 1 + 4 * checks.length + (withBlocks ? 3 * blocks.length : 0);
        }
      },
      (error: unknown) => {
        for (const { reject } of batch) reject(error);
      },
    );
  }

  /**
   * decide.lua's arguments for `batch` (see there): the keys (their count first when `counted`), then
   * each distinct rule once, the calendar windows' periods, and per request its rules' numbers in that
   * table (and a tokens rule's cost).
   */
  private batchArgs(batch: readonly Pick<Pending, 'checks' | 'blocks' | 'now'>[], counted: boolean): (string | number)[] {
    const { prefix, algorithm } = this.options;
    const args: (string | number)[] = counted ? [0] : [];
    const table = new RuleTable();
    const policies = new Map<BlockPolicy, number>();
    for (const { checks, blocks, now } of batch) {
      for (const check of checks) {
        args.push(`${prefix}:${check.key}`);
        table.numberOf(check.rule, now);
      }
      for (const block of blocks) {
        args.push(`${prefix}:${block.key}`);
        if (!policies.has(block.policy)) policies.set(block.policy, policies.size + 1);
      }
    }
    if (counted) args[0] = args.length - 1;
    args.push(algorithm, batch.length, this.useCallerTime ? 'c' : '', table.rules.length);
    for (const rule of table.rules) args.push(rule.limit, rule.windowMs, rule.unit === 'tokens' ? 't' : 'r');
    table.pushCalendars(args);
    pushBlockTable(args, policies);
    for (const { checks, blocks, now } of batch) {
      if (this.useCallerTime) args.push(now);
      args.push(checks.length);
      for (const check of checks) {
        const number = table.numberOf(check.rule, now);
        if (check.rule.unit === 'tokens') args.push(number, check.cost ?? 1);
        else args.push(number);
      }
      if (policies.size > 0) pushRequestBlocks(args, checks, blocks, policies);
    }
    return args;
  }

  /** When a request was decided: the server's time the script returned, or the caller's. */
  private chargeTime(reply: (number | string)[], now: number): number {
    return this.useCallerTime ? now : Number(reply[0]);
  }

  async close(): Promise<void> {
    // The client is owned by whoever created it (see redis-client.ts).
  }
}

/**
 * The script as a command that knows how many of its arguments are keys (0: the key count comes
 * first). Defined once per client (a second store on the same client reuses it).
 */
function defined<C>(client: RedisClient, base: string, lua: string, keys: number): C {
  const name = keys === 0 ? `${base}Batch` : `${base}${keys}`;
  if (typeof (client as unknown as Record<string, unknown>)[name] !== 'function') {
    client.defineCommand(name, keys === 0 ? { lua } : { lua, numberOfKeys: keys });
  }
  return ((client as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!).bind(client) as C;
}

/** blocks.lua's policy table: how many, then each one's after, decay and durations. */
function pushBlockTable(args: (string | number)[], policies: ReadonlyMap<BlockPolicy, number>): void {
  args.push(policies.size);
  for (const policy of policies.keys()) args.push(policy.after, policy.decayMs, policy.durationsMs.length, ...policy.durationsMs);
}

/** One request's blocks for blocks.lua: how many, their policies' numbers, then each rule's block (0: none). */
function pushRequestBlocks(args: (string | number)[], checks: readonly RuleCheck[], blocks: readonly BlockCheck[], policies: ReadonlyMap<BlockPolicy, number>): void {
  args.push(blocks.length);
  for (const block of blocks) args.push(policies.get(block.policy)!);
  for (const check of checks) args.push(check.block === undefined ? 0 : blocks.findIndex((block) => block.key === check.block!.key) + 1);
}

/**
 * decide.lua's rule table: each distinct rule once (rules are compiled once, so the same object
 * recurs), and a calendar window once per period set it is asked in (a batch's requests nearly
 * always share one; on the caller's time they may not).
 */
class RuleTable {
  readonly rules: Rule[] = [];
  private readonly numbers = new Map<Rule, number>();
  /** The calendar entries: their number, and the periods around their requests' time. */
  private calendars: { rule: Rule; number: number; around: readonly number[] }[] | undefined;

  /** `rule`'s number in the table (1-based) for a request at `now`, added when it is new. */
  numberOf(rule: Rule, now: number): number {
    if (rule.calendar === undefined) {
      let number = this.numbers.get(rule);
      if (number === undefined) {
        this.rules.push(rule);
        this.numbers.set(rule, (number = this.rules.length));
      }
      return number;
    }
    const around = rule.calendar.around(now);
    const calendars = (this.calendars ??= []);
    const known = calendars.find((entry) => entry.rule === rule && entry.around[1] === around[1]);
    if (known !== undefined) return known.number;
    this.rules.push(rule);
    calendars.push({ rule, number: this.rules.length, around });
    return this.rules.length;
  }

  /** The calendar section: how many, then each one's number and period boundaries. */
  pushCalendars(args: (string | number)[]): void {
    const calendars = this.calendars ?? [];
    args.push(calendars.length);
    for (const { number, around } of calendars) args.push(number, ...around);
  }
}

/**
 * The checks' order as decide.lua takes them, calendar windows after the other rules (see there): the
 * index of each check in `checks`, or undefined when they are in that order already.
 */
function calendarLast(checks: readonly RuleCheck[]): number[] | undefined {
  let calendar = false;
  let reorder = false;
  for (const check of checks) {
    if (check.rule.calendar !== undefined) calendar = true;
    else if (calendar) reorder = true;
  }
  if (!reorder) return undefined;
  const order: number[] = [];
  for (let i = 0; i < checks.length; i++) if (checks[i]!.rule.calendar === undefined) order.push(i);
  for (let i = 0; i < checks.length; i++) if (checks[i]!.rule.calendar !== undefined) order.push(i);
  return order;
}

/**
 * The verdict of a request's blocks from their triples at `at` (ms left, level, started): the longest
 * block in force, if any.
 */
function blockVerdict(reply: (number | string)[], at: number, blocks: readonly BlockCheck[]): BlockVerdict | undefined {
  let verdict: BlockVerdict | undefined;
  for (let j = 0; j < blocks.length; j++, at += 3) {
    const left = Number(reply[at]);
    if (left > 0 && (verdict === undefined || left > verdict.retryAfterMs)) {
      verdict = { block: blocks[j]!, retryAfterMs: left, level: Number(reply[at + 1]), started: Number(reply[at + 2]) === 1 };
    }
  }
  return verdict;
}

/**
 * A request's decision from the script's reply: from `at`, its status (0 decided, 1 refused by a
 * block in force), then its rules' quadruples (retry after, remaining, reset, too large), then, when
 * the call carried blocks, its blocks' triples; `charge` is when it was decided. `order` puts each
 * result back in the request's own order (see calendarLast).
 */
function decision(reply: (number | string)[], at: number, rules: number, charge: number, order?: readonly number[], blocks?: readonly BlockCheck[]): Decision {
  if (blocks !== undefined) {
    const verdict = blockVerdict(reply, at + 1 + 4 * rules, blocks);
    if (Number(reply[at]) === 1) return { allowed: false, retryAfterMs: verdict!.retryAfterMs, results: [], charge, blocked: verdict };
    const decided = decision(reply, at, rules, charge, order);
    if (verdict !== undefined) {
      decided.blocked = verdict;
      if (verdict.retryAfterMs > decided.retryAfterMs) decided.retryAfterMs = verdict.retryAfterMs;
    }
    return decided;
  }
  at++;
  const results: RuleResult[] = new Array(rules);
  let retryAfterMs = 0;
  for (let i = 0; i < rules; i++) {
    const wait = Number(reply[at]);
    const result: RuleResult = { retryAfterMs: wait, remaining: Number(reply[at + 1]), resetMs: Number(reply[at + 2]) };
    if (Number(reply[at + 3]) === 1) result.tooLarge = true;
    results[order === undefined ? i : order[i]!] = result;
    if (wait > retryAfterMs) retryAfterMs = wait;
    at += 4;
  }
  return { allowed: retryAfterMs === 0, retryAfterMs, results, charge };
}
