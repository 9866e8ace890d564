import { systemClock, type Clock } from '../../../src/plugin-sdk.ts';
import { randomBytes } from 'node:crypto';
import { forgetRedis } from '../store/redis-admin.ts';
import type { RedisClient } from '../store/redis.ts';
import { HeldSlots } from './held-slots.ts';
import { LeaseRenewal, type RedisSlot } from './redis-renewal.ts';
import { SlotsScript } from './redis-script.ts';
import { refusal, type ConcurrencyGate, type SlotRequest, type SlotResult } from './types.ts';
import { WaitingLine, type Waiter } from './waiting-line.ts';

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

/** Waits on its keys' Redis names; listed in their lines once its first ask found a key full. */
interface RedisWaiter extends Waiter<string> {
  limitArgs: number[];
  deadline: number;
  /** An acquire call is on its way. */
  attempting: boolean;
  /** A local release came while that call was on its way: try again as soon as it answers. */
  wakeAgain: boolean;
  reject(error: unknown): void;
}

const NOOP_RELEASE: SlotResult = { ok: true, release: () => {} };

/**
 * Concurrency slots shared by every gateway on one Redis (or Cluster). A key is a sorted set of lease
 * ids scored by lease expiry (server time); one script call takes a slot on all of a request's keys
 * or on none (SlotsScript, slots.lua). Leases this process holds (HeldSlots) are renewed together
 * (LeaseRenewal); a gateway that dies stops renewing, and its slots free themselves after leaseMs.
 *
 * A call that finds a key full asks again every retryMs until its queue timeout; when this process
 * releases a slot, the earliest local waiter for each of its keys (WaitingLine) asks at once (other
 * gateways' releases are only seen by polling).
 *
 * Redis errors: acquire() rejects (the caller decides what a failing backend means); release and
 * renewal failures are counted in `errors` and otherwise ignored: the leases expire by themselves.
 */
export class RedisConcurrencyGate implements ConcurrencyGate {
  private readonly script: SlotsScript;
  private readonly slots: HeldSlots<RedisSlot>;
  private readonly renewal: LeaseRenewal;
  private readonly line: WaitingLine<string, RedisWaiter>;
  private readonly leaseMs: number;
  private readonly retryMs: number;
  private readonly clock: Clock;
  /** Lease ids are unique across gateways: this instance's random part, then a counter. */
  private readonly instance = randomBytes(6).toString('base64url');
  private ids = 0;
  private closed = false;
  private releaseFailures = 0;

  constructor(private readonly options: RedisConcurrencyGateOptions) {
    // Whole milliseconds: scores are written as integers.
    this.leaseMs = Math.max(1, Math.ceil(options.leaseMs ?? 30_000));
    this.retryMs = Math.max(1, options.retryMs ?? 20);
    this.clock = options.clock ?? systemClock;
    this.script = new SlotsScript(options.client);
    this.slots = new HeldSlots((slot) => this.released(slot));
    this.renewal = new LeaseRenewal({
      script: this.script,
      held: this.slots,
      leaseMs: this.leaseMs,
      everyMs: Math.max(1, options.renewEveryMs ?? Math.floor(this.leaseMs / 3)),
      maxHoldMs: options.maxHoldMs,
      clock: this.clock,
    });
    this.line = new WaitingLine({ clock: this.clock });
  }

  get held(): number {
    return this.slots.size;
  }

  /** Calls waiting for a slot (including the first ask of each). */
  get queued(): number {
    return this.line.size;
  }

  /** Release and renewal calls that failed (ignored: leases expire by themselves). */
  get errors(): number {
    return this.releaseFailures + this.renewal.failures;
  }

  /** Held slots found gone from Redis at a renewal (a key reset, Redis restarted, or renewals too late). */
  get lostLeases(): number {
    return this.renewal.lost;
  }

  acquire(request: SlotRequest): SlotResult | Promise<SlotResult> {
    const { limits, signal } = request;
    if (limits.length === 0) return NOOP_RELEASE;
    if (this.closed || signal?.aborted) return refusal(request, 'aborted', undefined, 0);
    return new Promise<SlotResult>((resolve, reject) => {
      const started = this.clock.now();
      const waiter: RedisWaiter = {
        seq: 0,
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
      this.line.enter(waiter);
      this.attempt(waiter);
    });
  }

  private attempt(waiter: RedisWaiter): void {
    waiter.timer = undefined;
    waiter.attempting = true;
    waiter.wakeAgain = false;
    const id = `${this.instance}:${(++this.ids).toString(36)}`;
    this.script.acquire(waiter.keys, id, this.leaseMs, waiter.limitArgs).then(
      (reply) => {
        waiter.attempting = false;
        const full = Number(reply);
        if (full === 0) {
          // Given up (aborted, gate closed) while the call was on its way: the slot goes straight back.
          if (waiter.done) void this.sendRelease(waiter.keys, id);
          else {
            // Taken before the waiter leaves the line, so nothing runs in between.
            const result = this.hold(id, waiter);
            this.line.leave(waiter);
            waiter.resolve(result);
          }
          return;
        }
        if (waiter.done) return;
        waiter.blockedOn = waiter.request.limits[full - 1] ?? waiter.blockedOn;
        if (waiter.wakeAgain) return this.attempt(waiter);
        const now = this.clock.now();
        if (now >= waiter.deadline) return this.line.giveUp(waiter, 'timeout');
        this.line.list(waiter);
        const jittered = this.retryMs * (0.5 + Math.random());
        waiter.timer = setTimeout(() => this.attempt(waiter), Math.min(jittered, waiter.deadline - now));
        waiter.timer.unref?.();
      },
      (error: unknown) => {
        waiter.attempting = false;
        // The slot may have been taken with only the answer lost (a timeout): give it back, just in case.
        void this.sendRelease(waiter.keys, id, false);
        if (waiter.done) return;
        this.line.leave(waiter);
        waiter.reject(error);
      },
    );
  }

  private hold(id: string, waiter: RedisWaiter): SlotResult {
    const { signal } = waiter.request;
    const result = this.slots.hold({ id, keys: waiter.keys, acquiredAt: this.clock.now(), signal, onAbort: undefined, lost: false, done: false });
    this.renewal.start();
    return result;
  }

  /** A held slot was given back (release(), abort, or held past maxHoldMs). */
  private released(slot: RedisSlot): void {
    if (this.slots.size === 0) this.renewal.stop();
    // Sent before any waiter is woken: on the same connection, the waiter's acquire runs after it.
    void this.sendRelease(slot.keys, slot.id);
    this.wake(slot.keys);
  }

  private sendRelease(keys: readonly string[], id: string, count = true): Promise<void> {
    return this.script.release(keys, id).then(
      () => {},
      () => {
        if (count) this.releaseFailures++;
      },
    );
  }

  /** A slot of these keys came free here: the earliest local waiter for each asks again now. */
  private wake(keys: readonly string[]): void {
    for (const key of keys) {
      const line = this.line.lineOf(key);
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

  /** Extends the lease of every slot held here: one call per slot on a Cluster, batched otherwise. */
  renew(): Promise<void> {
    return this.renewal.renew();
  }

  inUse(keys: readonly string[]): Promise<number[]> {
    return Promise.all(keys.map((key) => this.script.count(`${this.options.prefix}:${key}`)));
  }

  forget(tag: string, owns: (key: string) => boolean): Promise<number> {
    return forgetRedis(this.options.client, this.options.prefix, tag, owns);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.renewal.close();
    this.line.close();
    const releases: Promise<void>[] = [];
    for (const slot of [...this.slots]) {
      this.slots.drop(slot);
      releases.push(this.sendRelease(slot.keys, slot.id));
    }
    await Promise.all(releases);
  }
}
