import { ExpiringMap } from '../../../src/plugin-sdk.ts';
import type { Algorithm } from '../algorithms/types.ts';
import { blocksOf } from '../blocks/memory.ts';
import type { BlockCheck, BlockPolicy } from '../blocks/types.ts';
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
/** Snapshots (and blocks) kept per hash tag: a tenant's tag holds each flooding member's own. */
const SNAPSHOTS_PER_TAG = 8;

/**
 * An escalating block in force, as Redis answered it: until it ends the subject's requests are refused
 * before any rule is read, so nothing about them changes (see blocks.lua).
 */
interface CachedBlock {
  key: string;
  policy: BlockPolicy;
  level: number;
  /** Local time the block ends at, or a little before (the decision's ask time plus its wait). */
  until: number;
  /** Not answered from after this (SNAPSHOT_MAX_AGE_MS after Redis said so). */
  expiresAt: number;
}

/** What the cache keeps per hash tag (all keys of one request share one; see keys.ts). */
interface TagEntry {
  expiresAt: number;
  used: boolean;
  /** The read in flight, if any: its answer is kept only if this is still the tag's read. */
  reading: object | undefined;
  /** No read starts before this (MIN_READ_INTERVAL_MS after the last; a second after one that could not answer). */
  nextReadAt: number;
  snapshots: Snapshot[];
  blocks: CachedBlock[];
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

  /** The refusal Redis would answer now, from a block or a snapshot; undefined when neither can say. */
  answer(checks: readonly RuleCheck[], now: number): Decision | undefined {
    if (this.tags.size === 0 || checks.length === 0) return undefined;
    const entry = this.tags.get(tagOf(checks[0]!.key), now);
    if (entry === undefined) return undefined;
    // Under escalating blocks a refusal counts a strike in Redis: only a block in force is answered here.
    const blocks = blocksOf(checks);
    if (blocks.length > 0) return this.blockedAnswer(entry, blocks, now);
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

  /**
   * A block in force refusing a request with one block (with two, a user's and a tenant's, the
   * tenant's could start meanwhile and be the longer one): the refusal Redis gives until it ends.
   */
  private blockedAnswer(entry: TagEntry, blocks: readonly BlockCheck[], now: number): Decision | undefined {
    if (blocks.length !== 1) return undefined;
    const block = blocks[0]!;
    for (const held of entry.blocks) {
      if (held.key !== block.key || held.policy !== block.policy) continue;
      if (held.until <= now || held.expiresAt <= now) return undefined;
      this.tags.touch('', entry);
      const retryAfterMs = Math.ceil(held.until - now);
      return { allowed: false, retryAfterMs, results: [], blocked: { block, retryAfterMs, level: held.level, started: false } };
    }
    return undefined;
  }

  /** Redis refused `checks` with a block in force (or just started): remembered until it ends, for at most a while. */
  blocked(checks: readonly RuleCheck[], decision: Decision, now: number): void {
    const verdict = decision.blocked;
    const blocks = blocksOf(checks);
    if (verdict === undefined || verdict.retryAfterMs <= 0 || blocks.length !== 1 || blocks[0]!.key !== verdict.block.key) return;
    const entry = this.entryFor(checks, now);
    if (entry === undefined) return;
    const held: CachedBlock = {
      key: verdict.block.key,
      policy: verdict.block.policy,
      level: verdict.level,
      until: now + verdict.retryAfterMs,
      expiresAt: now + SNAPSHOT_MAX_AGE_MS,
    };
    entry.blocks = entry.blocks.filter((b) => b.key !== held.key);
    if (entry.blocks.length >= SNAPSHOTS_PER_TAG) entry.blocks.shift();
    entry.blocks.push(held);
    entry.expiresAt = Math.max(entry.expiresAt, held.expiresAt);
  }

  /** Redis refused `checks`: returns a ticket when their state should be read now. */
  refused(checks: readonly RuleCheck[], now: number): ReadTicket | undefined {
    if (checks.length === 0) return undefined;
    const tag = tagOf(checks[0]!.key);
    const entry = this.tags.get(tag, now);
    if (entry === undefined) {
      // The first refusal only marks the tag.
      this.entryFor(checks, now);
      return undefined;
    }
    if (entry.reading !== undefined || now < entry.nextReadAt || !sharesTag(checks, tag)) return undefined;
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

  /** The tag's entry, made when missing; undefined when the checks do not share one tag. */
  private entryFor(checks: readonly RuleCheck[], now: number): TagEntry | undefined {
    const tag = tagOf(checks[0]!.key);
    if (!sharesTag(checks, tag)) return undefined;
    let entry = this.tags.get(tag, now);
    if (entry === undefined) {
      entry = { expiresAt: now + SNAPSHOT_MAX_AGE_MS, used: false, reading: undefined, nextReadAt: now, snapshots: [], blocks: [] };
      this.tags.set(tag, entry, now);
    }
    return entry;
  }

  private current({ tag, entry, token }: ReadTicket): boolean {
    return this.tags.peek(tag) === entry && entry.reading === token;
  }
}

/** Every key of a request shares its tag (keys.ts); one that did not could not be dropped by its tag. */
function sharesTag(checks: readonly RuleCheck[], tag: string): boolean {
  return checks.every((check) => check.key.startsWith(tag));
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((key, i) => key === b[i]);
}
