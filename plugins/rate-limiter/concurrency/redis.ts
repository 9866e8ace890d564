import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { forgetRedis } from '../store/redis-admin.ts';
import type { RedisClient } from '../store/redis.ts';
import { refusal, type ConcurrencyGate, type SlotLimit, type SlotRequest, type SlotResult } from './types.ts';

const SLOTS_LUA = readFileSync(new URL('./slots.lua', import.meta.url), 'utf8');
const COMMAND = 'floodgateSlots';
/** Most slots one renewal call carries on a single server. */
const MAX_RENEW_BATCH = 512;

type SlotsCommand = (...args: (string | number)[]) => Promise<unknown>;

/** Key counts whose commands are defined up front: a call caps a user and a tenant, so 1 or 2. */
const EAGER_KEY_COUNTS = 4;

export interface RedisConcurrencyGateOptions {
  client: RedisClient;
  /** Prefix of every key: "fg" and "{t:acme}c:" give "fg:{t:acme}c:". */
  prefix: string;
  /**
   * How long a slot outlives the last renewal of its lease: the time after which the slots of a
   * gateway that died (and stopped renewing) free themselves. Default 30 s.
   */
  leaseMs?: number;
  /** Leases are renewed this often while held. Default leaseMs / 3 (two renewals may fail in a row). */
  renewEveryMs?: number;
  /** A waiter asks Redis again about this often (with jitter); a release by this process wakes it at once. Default 20 ms. */
  retryMs?: number;
  /**
   * A slot held longer than this is released as the memory gate's lease would (a call that never
   * finishes cannot keep it for ever). Default: held as long as the caller holds it.
   */
  maxHoldMs?: number;
  clock?: Clock;
}

interface Held {
  id: string;
  keys: string[];
  acquiredAt: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Some key no longer held its lease at a renewal (counted once). */
  lost: boolean;
  done: boolean;
}

interface Waiter {
  seq: number;
  request: SlotRequest;
  keys: string[];
  limitArgs: number[];
  started: number;
  deadline: number;
  blockedOn: SlotLimit;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** An acquire call is on its way. */
  attempting: boolean;
  /** A local release came while that call was on its way: try again as soon as it answers. */
  wakeAgain: boolean;
  /** In the lists of waiters woken by local releases. */
  listed: boolean;
  done: boolean;
  resolve(result: SlotResult): void;
  reject(error: unknown): void;
}

const NOOP_RELEASE: SlotResult = { ok: true, release: () => {} };

/**
 * Concurrency slots shared by every gateway on one Redis (or Cluster). A key is a sorted set of lease
 * ids scored by lease expiry (server time); one script call takes a slot on all of a request's keys
 * or on none (see slots.lua). Leases this process holds are renewed together every renewEveryMs;
 * a gateway that dies stops renewing, and its slots free themselves after leaseMs.
 *
 * A call that finds a key full asks again every retryMs until its queue timeout; when this process
 * releases a slot, the earliest local waiter for each of its keys asks at once (other gateways'
 * releases are only seen by polling).
 *
 * Redis errors: acquire() rejects (the caller decides what a failing backend means); release and
 * renewal failures are counted in `errors` and otherwise ignored: the leases expire by themselves.
 */
export class RedisConcurrencyGate implements ConcurrencyGate {
  private readonly commands = new Map<number, SlotsCommand>();
  private readonly cluster: boolean;
  private readonly leaseMs: number;
  private readonly renewEveryMs: number;
  private readonly retryMs: number;
  private readonly clock: Clock;
  /** Lease ids are unique across gateways: this instance's random part, then a counter. */
  private readonly instance = randomBytes(6).toString('base64url');
  private ids = 0;
  private seq = 0;
  private readonly heldSlots = new Set<Held>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly pending = new Set<Waiter>();
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  private closed = false;
  private failures = 0;
  private lost = 0;

  constructor(private readonly options: RedisConcurrencyGateOptions) {
    this.cluster = Boolean((options.client as { isCluster?: boolean }).isCluster);
    // Whole milliseconds: scores are written as integers.
    this.leaseMs = Math.max(1, Math.ceil(options.leaseMs ?? 30_000));
    this.renewEveryMs = Math.max(1, options.renewEveryMs ?? Math.floor(this.leaseMs / 3));
    this.retryMs = Math.max(1, options.retryMs ?? 20);
    this.clock = options.clock ?? systemClock;
    // Every command is defined before the client sends anything. An auto-pipeline made before a
    // command was defined lacks it: the call is rejected, yet its callback stays in the pipeline,
    // and when that pipeline runs ioredis throws an uncaught TypeError ("results[i] is not iterable").
    for (let keys = 0; keys <= EAGER_KEY_COUNTS; keys++) this.command(keys);
  }

  get held(): number {
    return this.heldSlots.size;
  }

  /** Calls waiting for a slot (including the first ask of each). */
  get queued(): number {
    return this.pending.size;
  }

  /** Release and renewal calls that failed (ignored: leases expire by themselves). */
  get errors(): number {
    return this.failures;
  }

  /** Held slots found gone from Redis at a renewal (a key reset, Redis restarted, or renewals too late). */
  get lostLeases(): number {
    return this.lost;
  }

  /**
   * The script as a command that knows how many of its arguments are keys (0: the key count comes
   * first), so that ioredis routes it by its first key on a Cluster (see RedisStore.command()).
   */
  private command(keys: number): SlotsCommand {
    let command = this.commands.get(keys);
    if (command === undefined) {
      const { client } = this.options;
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

  acquire(request: SlotRequest): SlotResult | Promise<SlotResult> {
    const { limits, signal } = request;
    if (limits.length === 0) return NOOP_RELEASE;
    if (this.closed || signal?.aborted) return refusal(request, 'aborted', undefined, 0);
    return new Promise<SlotResult>((resolve, reject) => {
      const started = this.clock.now();
      const waiter: Waiter = {
        seq: ++this.seq,
        request,
        keys: limits.map((l) => `${this.options.prefix}:${l.key}`),
        limitArgs: limits.map((l) => l.limit),
        started,
        deadline: started + Math.max(0, request.queueTimeoutMs),
        blockedOn: limits[0]!,
        timer: undefined,
        onAbort: undefined,
        attempting: false,
        wakeAgain: false,
        listed: false,
        done: false,
        resolve,
        reject,
      };
      this.pending.add(waiter);
      if (signal !== undefined) {
        waiter.onAbort = () => this.giveUp(waiter, 'aborted');
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.attempt(waiter);
    });
  }

  private attempt(waiter: Waiter): void {
    waiter.timer = undefined;
    waiter.attempting = true;
    waiter.wakeAgain = false;
    const id = `${this.instance}:${(++this.ids).toString(36)}`;
    this.call(waiter.keys, 'acquire', id, this.leaseMs, ...waiter.limitArgs).then(
      (reply) => {
        waiter.attempting = false;
        const full = Number(reply);
        if (full === 0) {
          // Given up (aborted, gate closed) while the call was on its way: the slot goes straight back.
          if (waiter.done) void this.sendRelease(waiter.keys, id);
          else {
            // Taken before the waiter leaves the line, so nothing runs in between.
            const result = this.hold(id, waiter);
            this.settle(waiter);
            waiter.resolve(result);
          }
          return;
        }
        if (waiter.done) return;
        waiter.blockedOn = waiter.request.limits[full - 1] ?? waiter.blockedOn;
        if (waiter.wakeAgain) return this.attempt(waiter);
        const now = this.clock.now();
        if (now >= waiter.deadline) return this.giveUp(waiter, 'timeout');
        this.list(waiter);
        const jittered = this.retryMs * (0.5 + Math.random());
        waiter.timer = setTimeout(() => this.attempt(waiter), Math.min(jittered, waiter.deadline - now));
        waiter.timer.unref?.();
      },
      (error: unknown) => {
        waiter.attempting = false;
        // The slot may have been taken with only the answer lost (a timeout): give it back, just in case.
        void this.sendRelease(waiter.keys, id, false);
        if (waiter.done) return;
        this.settle(waiter);
        waiter.reject(error);
      },
    );
  }

  private hold(id: string, waiter: Waiter): SlotResult {
    const { signal } = waiter.request;
    const slot: Held = { id, keys: waiter.keys, acquiredAt: this.clock.now(), signal, onAbort: undefined, lost: false, done: false };
    this.heldSlots.add(slot);
    if (signal !== undefined) {
      slot.onAbort = () => this.release(slot);
      signal.addEventListener('abort', slot.onAbort, { once: true });
    }
    this.startRenewing();
    return { ok: true, release: () => this.release(slot) };
  }

  private release(slot: Held): void {
    if (slot.done) return;
    slot.done = true;
    this.heldSlots.delete(slot);
    if (slot.onAbort !== undefined) slot.signal!.removeEventListener('abort', slot.onAbort);
    if (this.heldSlots.size === 0) this.stopRenewing();
    // Sent before any waiter is woken: on the same connection, the waiter's acquire runs after it.
    void this.sendRelease(slot.keys, slot.id);
    this.wake(slot.keys);
  }

  private sendRelease(keys: readonly string[], id: string, count = true): Promise<void> {
    return this.call(keys, 'release', id).then(
      () => {},
      () => {
        if (count) this.failures++;
      },
    );
  }

  /** A slot of these keys came free here: the earliest local waiter for each asks again now. */
  private wake(keys: readonly string[]): void {
    for (const key of keys) {
      const line = this.waiters.get(key);
      if (line === undefined) continue;
      for (const waiter of line) {
        if (waiter.attempting) {
          if (waiter.wakeAgain) continue;
          waiter.wakeAgain = true;
        } else {
          clearTimeout(waiter.timer);
          this.attempt(waiter);
        }
        break;
      }
    }
  }

  private giveUp(waiter: Waiter, reason: 'timeout' | 'aborted'): void {
    if (waiter.done) return;
    this.settle(waiter);
    waiter.resolve(refusal(waiter.request, reason, waiter.blockedOn, Math.max(0, this.clock.now() - waiter.started)));
  }

  private list(waiter: Waiter): void {
    if (waiter.listed) return;
    waiter.listed = true;
    for (const key of waiter.keys) {
      let line = this.waiters.get(key);
      if (line === undefined) this.waiters.set(key, (line = new Set()));
      line.add(waiter);
    }
  }

  /** Takes a waiter out of line (granted, refused or failed). */
  private settle(waiter: Waiter): void {
    waiter.done = true;
    this.pending.delete(waiter);
    clearTimeout(waiter.timer);
    waiter.timer = undefined;
    if (waiter.onAbort !== undefined) waiter.request.signal!.removeEventListener('abort', waiter.onAbort);
    if (!waiter.listed) return;
    for (const key of waiter.keys) {
      const line = this.waiters.get(key);
      if (line === undefined) continue;
      line.delete(waiter);
      if (line.size === 0) this.waiters.delete(key);
    }
  }

  private startRenewing(): void {
    if (this.renewTimer !== undefined || this.closed) return;
    this.renewTimer = setInterval(() => void this.renew(), this.renewEveryMs);
    this.renewTimer.unref?.();
  }

  private stopRenewing(): void {
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  /** Extends the lease of every slot held here: one call per slot on a Cluster, batched otherwise. */
  async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const { maxHoldMs } = this.options;
      const now = this.clock.now();
      const slots: Held[] = [];
      for (const slot of this.heldSlots) {
        if (maxHoldMs !== undefined && now - slot.acquiredAt >= maxHoldMs) this.release(slot);
        else slots.push(slot);
      }
      const calls: Promise<void>[] = [];
      if (this.cluster) {
        for (const slot of slots) calls.push(this.renewBatch([slot]));
      } else {
        for (let from = 0; from < slots.length; from += MAX_RENEW_BATCH) calls.push(this.renewBatch(slots.slice(from, from + MAX_RENEW_BATCH)));
      }
      await Promise.all(calls);
    } finally {
      this.renewing = false;
    }
  }

  private async renewBatch(slots: Held[]): Promise<void> {
    const keys: string[] = [];
    const args: (string | number)[] = ['renew', this.leaseMs];
    for (const slot of slots) {
      keys.push(...slot.keys);
      args.push(slot.id, slot.keys.length);
    }
    let reply: unknown;
    try {
      // One slot's keys share a hash slot; several slots in one call only on a single server.
      reply = slots.length === 1 ? await this.call(keys, ...args) : await this.command(0)(keys.length, ...keys, ...args);
    } catch {
      this.failures++;
      return;
    }
    const whole = reply as number[];
    slots.forEach((slot, i) => {
      if (Number(whole[i]) === 0 && !slot.lost && !slot.done) {
        slot.lost = true;
        this.lost++;
      }
    });
  }

  async inUse(keys: readonly string[]): Promise<number[]> {
    const counts = await Promise.all(keys.map((key) => this.call([`${this.options.prefix}:${key}`], 'count')));
    return counts.map(Number);
  }

  forget(tag: string, owns: (key: string) => boolean): Promise<number> {
    return forgetRedis(this.options.client, this.options.prefix, tag, owns);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewing();
    for (const waiter of [...this.pending]) this.giveUp(waiter, 'aborted');
    const releases: Promise<void>[] = [];
    for (const slot of [...this.heldSlots]) {
      slot.done = true;
      if (slot.onAbort !== undefined) slot.signal!.removeEventListener('abort', slot.onAbort);
      releases.push(this.sendRelease(slot.keys, slot.id));
    }
    this.heldSlots.clear();
    await Promise.all(releases);
  }
}
