import { ExpiringMap, type IdentityHasher } from '../../../src/plugin-sdk.ts';
import type { Subject } from '../policy.ts';

/** How long a subject stays on the board after its last refusal. */
const MEMORY_MS = 10 * 60_000;

/**
 * The subjects refused most in the last ten minutes, for the status page: counted by key in this
 * process (bounded, the oldest forgotten first) and shown only by their salted hash, so an operator
 * can tell flooders apart and look one up without the page ever showing who they are.
 */
export class TopSubjects {
  private readonly refused: ExpiringMap<{ expiresAt: number; count: number }>;

  constructor(
    private readonly identity: IdentityHasher,
    maxSubjects = 10_000,
  ) {
    this.refused = new ExpiringMap(maxSubjects);
  }

  count(subject: Subject, now: number): void {
    const key = `${subject.scope.tag}${subject.scope.member}`;
    const entry = this.refused.get(key, now);
    if (entry === undefined) this.refused.set(key, { expiresAt: now + MEMORY_MS, count: 1 }, now);
    else {
      entry.count++;
      entry.expiresAt = now + MEMORY_MS;
    }
  }

  /** The `limit` most refused, most first, by hash. */
  top(limit: number, now: number): { subject: string; refusals: number }[] {
    const live: [string, number][] = [];
    for (const [key, entry] of this.refused.live(now)) live.push([key, entry.count]);
    live.sort((a, b) => b[1] - a[1]);
    return live.slice(0, limit).map(([key, refusals]) => ({ subject: this.identity.hash(key), refusals }));
  }

  clear(): void {
    this.refused.clear();
  }
}
