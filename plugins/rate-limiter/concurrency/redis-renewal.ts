import type { Clock } from '../../../src/plugin-sdk.ts';
import type { HeldSlot, HeldSlots } from './held-slots.ts';
import type { LeaseId, SlotsScript } from './redis-script.ts';

/** Most slots one renewal call carries on a single server. */
const MAX_RENEW_BATCH = 512;

/** A slot this process holds on Redis: a lease `id` on each of its keys. */
export interface RedisSlot extends HeldSlot, LeaseId {
  readonly acquiredAt: number;
  /** Some key no longer held its lease at a renewal (counted once). */
  lost: boolean;
}

export interface LeaseRenewalOptions {
  script: SlotsScript;
  held: HeldSlots<RedisSlot>;
  leaseMs: number;
  everyMs: number;
  /** A slot held this long is released at the next renewal instead. */
  maxHoldMs: number | undefined;
  clock: Clock;
}

/**
 * Keeps the leases of the slots this process holds: every `everyMs` while any is held, their leases
 * are extended together, in batches on a single server, one call per slot on a Cluster. A slot found
 * gone from Redis (its key reset, Redis restarted, renewals too late) is counted in `lost`, once; a
 * failed call in `failures`, and otherwise ignored: the leases then expire by themselves.
 */
export class LeaseRenewal {
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private closed = false;
  /** Renewal calls that failed. */
  failures = 0;
  /** Held slots found gone at a renewal. */
  lost = 0;

  constructor(private readonly options: LeaseRenewalOptions) {}

  /** Renews every everyMs from now on (until stop()). */
  start(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setInterval(() => void this.renew(), this.options.everyMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops for good: start() does nothing from now on. */
  close(): void {
    this.closed = true;
    this.stop();
  }

  /** Extends the lease of every slot held, after releasing those held longer than maxHoldMs. */
  async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      const { held, maxHoldMs, script } = this.options;
      const now = this.options.clock.now();
      const slots: RedisSlot[] = [];
      for (const slot of held) {
        if (maxHoldMs !== undefined && now - slot.acquiredAt >= maxHoldMs) held.release(slot);
        else slots.push(slot);
      }
      const calls: Promise<void>[] = [];
      if (script.cluster) {
        for (const slot of slots) calls.push(this.renewBatch([slot]));
      } else {
        for (let from = 0; from < slots.length; from += MAX_RENEW_BATCH) calls.push(this.renewBatch(slots.slice(from, from + MAX_RENEW_BATCH)));
      }
      await Promise.all(calls);
    } finally {
      this.renewing = false;
    }
  }

  private async renewBatch(slots: RedisSlot[]): Promise<void> {
    let whole: unknown[];
    try {
      whole = await this.options.script.renew(slots, this.options.leaseMs);
    } catch {
      this.failures++;
      return;
    }
    slots.forEach((slot, i) => {
      if (Number(whole[i]) === 0 && !slot.lost && !slot.done) {
        slot.lost = true;
        this.lost++;
      }
    });
  }
}
