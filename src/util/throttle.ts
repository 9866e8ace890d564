import { ExpiringMap, type Expiring } from './expiring-map.ts';

/**
 * Lets one call per key through per interval: for "tell the user once per cooldown" and "log this at
 * most once per 10 s". Bounded like every per-key structure here.
 */
export class KeyedThrottle {
  private readonly windows: ExpiringMap<Expiring>;

  constructor(maxKeys: number) {
    this.windows = new ExpiringMap<Expiring>(maxKeys);
  }

  /** True for the first call per key in each interval of `intervalMs`; false for the rest. */
  pass(key: string, now: number, intervalMs: number): boolean {
    if (this.windows.get(key, now) !== undefined) return false;
    this.windows.set(key, { expiresAt: now + intervalMs }, now);
    return true;
  }

  get size(): number {
    return this.windows.size;
  }
}
