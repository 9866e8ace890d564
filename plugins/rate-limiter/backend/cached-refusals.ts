import { ExpiringMap } from '../../../src/plugin-sdk.ts';
import type { Algorithm } from '../algorithms/types.ts';
import type { Decision, RuleCheck } from '../store/types.ts';
import { covers, evaluate, type Snapshot } from './refusal-snapshot.ts';

/**
 * The longest a snapshot is answered from, whatever else happens: the bound on how stale a cached
 * refusal can be when an invalidation never arrives (pub/sub down, a publish lost), and so on how
 * long an admin reset or a refund can take to reach every instance in the worst case.
 */
export const SNAPSHOT_MAX_AGE_MS = 1_000;
/** A tag's state is read at most this often. */
export const MIN_READ_INTERVAL_MS = 100;
/** A snapshot still in use is read again once this old, so a flood that goes on never waits on Redis. */
export const REFRESH_AFTER_MS = SNAPSHOT_MAX_AGE_MS / 2;
/** Snapshots kept per hash tag: a tenant's tag holds each flooding member's own. */
const SNAPSHOTS_PER_TAG = 8;

/** What the cache keeps per hash tag (all keys of one request share one; see keys.ts). */
interface TagEntry {
  expiresAt: number;
  used: boolean;
  /** The read in flight, if any: its answer is kept only if this is still the tag's read. */
  reading: object | undefined;
  /** No read starts before this (MIN_READ_INTERVAL_MS after the last; a second after one that could not answer). */
  nextReadAt: number;
  snapshots: Snapshot[];
}

/** A read the cache asked for: hand it back with its snapshot. */
export interface ReadTicket {
  readonly tag: string;
  readonly now: number;
  readonly entry: TagEntry;
  readonly token: object;
}

/** The hash tag a key lives under (`{http:alice}` of `{http:alice}u:|60000`); a key without one is its own group. */
export function tagOf(key: string): string {
  if (key.charCodeAt(0) !== 123 /* { */) return key;
  const end = key.indexOf('}');
  return end < 0 ? key : key.slice(0, end + 1);
}

/**
 * The refusal cache's memory: per hash tag, snapshots of refused requests' keys (see
 * refusal-snapshot.ts), bounded in number of tags like the store's keys and never answered from
 * past SNAPSHOT_MAX_AGE_MS. A tag is read only once Redis has refused it twice within that time (a
 * flood, not a user who was refused once and waits), at most every MIN_READ_INTERVAL_MS, and again
 * in the background while a flood goes on (REFRESH_AFTER_MS).
 * Dropping a tag (a refund, a reset, an invalidation from another instance) also orphans its read
 * in flight, so a read that started before the change never lands after it.
 */
export class CachedRefusals {
  private readonly tags: ExpiringMap<TagEntry>;

  constructor(
    maxTags: number,
    private readonly algorithm: Algorithm<unknown>,
    private readonly chargedByOthers: (check: RuleCheck) => boolean,
    /** Reads `checks`' state for `ticket` (a snapshot in use is getting old). */
    private readonly refresh: (ticket: ReadTicket, checks: readonly RuleCheck[]) => void,
  ) {
    this.tags = new ExpiringMap<TagEntry>(maxTags);
  }

  get size(): number {
    return this.tags.size;
  }

  /** The refusal Redis would answer now, from a snapshot; undefined when no snapshot can say. */
  answer(checks: readonly RuleCheck[], now: number): Decision | undefined {
    if (this.tags.size === 0 || checks.length === 0) return undefined;
    const entry = this.tags.get(tagOf(checks[0]!.key), now);
    if (entry === undefined) return undefined;
    for (const snapshot of entry.snapshots) {
      if (snapshot.expiresAt > now && covers(snapshot, checks)) {
        const decision = evaluate(snapshot, checks, now, this.algorithm, this.chargedByOthers);
        if (typeof decision === 'string') return undefined;
        this.tags.touch('', entry);
        if (snapshot.expiresAt - now < SNAPSHOT_MAX_AGE_MS - REFRESH_AFTER_MS && entry.reading === undefined) {
          this.refresh(this.startRead(tagOf(checks[0]!.key), entry, now), checks);
        }
        return decision;
      }
    }
    return undefined;
  }

  /** Redis refused `checks`: returns a ticket when their state should be read now. */
  refused(checks: readonly RuleCheck[], now: number): ReadTicket | undefined {
    if (checks.length === 0) return undefined;
    const tag = tagOf(checks[0]!.key);
    // Every key of a request shares its tag; one that did not could not be dropped by its tag.
    if (checks.some((check) => !check.key.startsWith(tag))) return undefined;
    const entry = this.tags.get(tag, now);
    if (entry === undefined) {
      // The first refusal only marks the tag.
      this.tags.set(tag, { expiresAt: now + SNAPSHOT_MAX_AGE_MS, used: false, reading: undefined, nextReadAt: now, snapshots: [] }, now);
      return undefined;
    }
    if (entry.reading !== undefined || now < entry.nextReadAt) return undefined;
    return this.startRead(tag, entry, now);
  }

  private startRead(tag: string, entry: TagEntry, now: number): ReadTicket {
    const token = {};
    entry.reading = token;
    entry.nextReadAt = now + MIN_READ_INTERVAL_MS;
    // Remembered past its snapshot's life: when that ends during a flood, the next refusal reads at once.
    entry.expiresAt = Math.max(entry.expiresAt, now + 2 * SNAPSHOT_MAX_AGE_MS);
    return { tag, now, entry, token };
  }

  /**
   * A read came back: its snapshot is kept unless the tag was dropped (or read again) since it
   * started. `shared`: it could not answer the request it was read for because a key others charge
   * (a tenant with room) admits; that tag is not read again for a second.
   */
  landed(ticket: ReadTicket, snapshot: Snapshot, shared: boolean): void {
    const { entry } = ticket;
    if (!this.current(ticket)) return;
    entry.reading = undefined;
    if (shared) entry.nextReadAt = ticket.now + SNAPSHOT_MAX_AGE_MS;
    const same = entry.snapshots.findIndex((s) => sameKeys(s.keys, snapshot.keys));
    if (same >= 0) entry.snapshots.splice(same, 1);
    else if (entry.snapshots.length >= SNAPSHOTS_PER_TAG) entry.snapshots.shift();
    entry.snapshots.push(snapshot);
    entry.expiresAt = Math.max(entry.expiresAt, snapshot.expiresAt);
  }

  /** Forgets everything cached under `tag` (its keys changed, or may have). */
  drop(tag: string): void {
    this.tags.delete(tag);
  }

  /** Forgets everything (invalidations may have been missed). */
  clear(): void {
    this.tags.clear();
  }

  private current({ tag, entry, token }: ReadTicket): boolean {
    return this.tags.peek(tag) === entry && entry.reading === token;
  }
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((key, i) => key === b[i]);
}
