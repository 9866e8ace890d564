export interface Expiring {
  /** Epoch ms after which the entry holds nothing worth keeping. */
  expiresAt: number;
}

/**
 * A Map whose entries expire, bounded in size, with no timers: every write sweeps a few entries
 * (a cursor walks the map round and round), so expired state is dropped at a steady, small cost per
 * call, and a full map evicts (least recently used first) before it grows. Entries are updated in
 * place by their owners, who call touch() when they use one.
 */
export class ExpiringMap<V extends Expiring> {
  private readonly entries = new Map<string, V>();
  private cursor: IterableIterator<[string, V]> = this.entries.entries();
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

  set(key: string, value: V, now: number): void {
    if (!this.entries.has(key)) {
      this.sweep(now, this.sweepPerInsert);
      if (this.entries.size >= this.maxKeys) this.makeRoom(now);
    }
    this.entries.set(key, value);
  }

  /**
   * Marks an entry as just used: it moves to the newest end, so when the map is full of live state,
   * the least recently used entry is the one evicted (a hot tenant key outlives a stream of one-off
   * user keys).
   */
  touch(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Inspects up to `budget` entries and drops the expired ones. */
  sweep(now: number, budget: number): void {
    for (let i = 0; i < budget; i++) {
      let step = this.cursor.next();
      if (step.done) {
        this.cursor = this.entries.entries();
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
    // Still full of live state: drop the least recently used entry. Its owner starts afresh, which
    // is the price of a hard memory bound.
    const oldest = this.entries.keys().next();
    if (!oldest.done) {
      this.entries.delete(oldest.value);
      this.evictedLive++;
    }
  }
}
