import type { Clock } from '../../../src/plugin-sdk.ts';
import type { HeldSlot, HeldSlots } from './held-slots.ts';

/** A held slot that counts as released once its lease has run out. */
export interface LeasedSlot extends HeldSlot {
  readonly expiresAt: number;
}

export interface LeaseExpiryOptions {
  leaseMs: number;
  clock: Clock;
  /** Run by the lease timer when the earliest lease is due: the gate expires leases and serves waiters. */
  expire: () => void;
  /** Whether anyone would miss an expiry no call notices (someone waits, the gate is open). */
  watched: () => boolean;
}

/**
 * The leases of the slots held in memory. One lease length for all, so the order slots were taken
 * in is the order they expire in: expired ones are found at the front of the held slots, lazily,
 * whenever the gate is used. While someone waits, one timer covers the earliest lease, so a waiter is
 * served even when no other call comes.
 */
export class LeaseExpiry<S extends LeasedSlot> {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly held: HeldSlots<S>,
    private readonly options: LeaseExpiryOptions,
  ) {}

  /** When a lease taken now runs out. */
  expiresAt(): number {
    return this.options.clock.now() + this.options.leaseMs;
  }

  /** Drops the slots whose lease has run out from the held ones (oldest first) and returns them; undefined if none. */
  takeExpired(): S[] | undefined {
    const now = this.options.clock.now();
    let expired: S[] | undefined;
    for (const slot of this.held) {
      if (slot.expiresAt > now) break;
      (expired ??= []).push(slot);
    }
    if (expired !== undefined) for (const slot of expired) this.held.drop(slot);
    return expired;
  }

  /** Arms the timer for the earliest lease, if it is not armed and someone watches. */
  watch(): void {
    if (this.timer !== undefined || !this.options.watched()) return;
    const first = this.held.oldest();
    if (first === undefined) return;
    const delay = Math.max(0, first.expiresAt - this.options.clock.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.options.expire();
      this.watch();
    }, delay + 1);
    this.timer.unref?.();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
