import { flattened } from './flat-string.ts';

export interface Expiring {
  /** Epoch ms after which the entry holds nothing worth keeping. */
  expiresAt: number;
  /**
   * Used since the eviction hand last passed it (set by touch()). Owners that touch their entries
   * should create them with `used: false`, so every entry keeps one shape.
   */
  used?: boolean;
}

/** How many recently used entries one eviction may spare before it takes the oldest regardless. */
const SECOND_CHANCES = 64;

/**
 * A Map whose entries expire, bounded in size, with no timers: every write sweeps a few entries
 * (a cursor walks the map round and round), so expired state is dropped at a steady, small cost per
 * call, and a full map evicts before it grows. Eviction is "second chance" (CLOCK), an approximation
 * of least-recently-used that costs nothing per read: touch() only marks an entry as used, and when
 * the map is full the oldest entry goes unless it was used since it was last considered, in which
 * case it moves to the newest end, unmarked. A busy key therefore outlives any stream of one-off keys.
 */
export class ExpiringMap<V extends Expiring> {
  private readonly entries = new Map<string, V>();
  private cursor: IterableIterator<[string, V]> = this.entries.entries();
  /**
   * The eviction hand, at the oldest entry. It only moves forward, so the holes that deletes leave at
   * the front of the Map are stepped over once, not on every eviction (starting from the front each
   * time made every eviction of a full 100,000-key map cost about 20 µs). Made when first needed and
   * dropped when the sweep comes round: an idle iterator keeps every table the Map has outgrown.
   */
  private hand: IterableIterator<[string, V]> | undefined;
  /** Entries dropped while still live because the map was full. */
  evictedLive = 0;

  constructor(
    readonly maxKeys: number,
    /** How many entries each insert inspects; 2 keeps the sweep ahead of insertions. */
    private readonly sweepPerInsert = 2,
  ) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError('maxKeys must be a positive integer');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live entry for `key`, or undefined (an expired entry is removed on the way). */
  get(key: string, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * The entry for `key`, expired or not: for an owner that checks expiry itself (an entry's
   * `expiresAt` may be worked out from its contents, which the owner is about to read anyway).
   */
  peek(key: string): V | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: V, now: number): void {
    if (!this.entries.has(key)) {
      this.sweep(now, this.sweepPerInsert);
      if (this.entries.size >= this.maxKeys) this.makeRoom(now);
      key = flattened(key);
    }
    this.entries.set(key, value);
  }

  /**
   * Marks an entry as just used, so that when the map is full of live state a busy key (a hot tenant)
   * is kept and an idle one (a one-off user) is evicted. A field write: no reordering per use.
   */
  touch(_key: string, value: V): void {
    value.used = true;
  }

  /** The live entries, oldest first (for reports; nothing is removed on the way). */
  *live(now: number): IterableIterator<[string, V]> {
    for (const entry of this.entries) if (entry[1].expiresAt > now) yield entry;
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Deletes every key `matches` accepts (an operator's reset: a scan, never on a message's path). */
  deleteWhere(matches: (key: string) => boolean): number {
    let deleted = 0;
    for (const key of [...this.entries.keys()]) {
      if (matches(key) && this.entries.delete(key)) deleted++;
    }
    return deleted;
  }

  clear(): void {
    this.entries.clear();
    this.cursor = this.entries.entries();
    this.hand = undefined;
  }

  /** Inspects up to `budget` entries and drops the expired ones. */
  sweep(now: number, budget: number): void {
    for (let i = 0; i < budget; i++) {
      let step = this.cursor.next();
      if (step.done) {
        this.cursor = this.entries.entries();
        this.hand = undefined;
        step = this.cursor.next();
        if (step.done) return;
      }
      const [key, entry] = step.value;
      if (entry.expiresAt <= now) this.entries.delete(key);
    }
  }

  private makeRoom(now: number): void {
    // Prefer dropping expired state; a bounded look keeps this O(1) amortised.
    this.sweep(now, 32);
    if (this.entries.size < this.maxKeys) return;
    // Still full of live state: drop the oldest entry not used since the hand last passed it. Its
    // owner starts afresh, which is the price of a hard memory bound.
    for (let spared = 0; ; spared++) {
      let step = this.hand?.next();
      if (step === undefined || step.done) {
        this.hand = this.entries.entries();
        step = this.hand.next();
        if (step.done) return;
      }
      const [key, entry] = step.value;
      if (entry.used === true && spared < SECOND_CHANCES) {
        // A second chance: to the newest end, unmarked (the hand reaches it again after the rest).
        entry.used = false;
        this.entries.delete(key);
        this.entries.set(key, entry);
        continue;
      }
      this.entries.delete(key);
      this.evictedLive++;
      return;
    }
  }
}
