import type { SlotLimit } from './types.ts';

/** One key's slots in use in this process. */
export interface KeyState {
  readonly key: string;
  inUse: number;
  /** Bumped by forget() and when the key is deleted: slots taken before no longer count here. */
  epoch: number;
}

/**
 * How many slots each key has in use in this process. A slot notes each key's epoch when taken, and
 * gives back only to keys still at that epoch: a key forget() reset, or one deleted and made anew,
 * owes it nothing. A key with nothing in use and no one waiting for it is deleted.
 */
export class KeyCounts {
  private readonly states = new Map<string, KeyState>();

  /** `waitedFor`: whether someone waits for a key (such a key is kept even with nothing in use). */
  constructor(private readonly waitedFor: (state: KeyState) => boolean) {}

  /** Keys tracked (in use or waited for). */
  get size(): number {
    return this.states.size;
  }

  inUse(keys: readonly string[]): number[] {
    return keys.map((key) => this.states.get(key)?.inUse ?? 0);
  }

  /** The first limit with no room left, if any. */
  firstFull(limits: readonly SlotLimit[]): SlotLimit | undefined {
    for (const limit of limits) {
      if ((this.states.get(limit.key)?.inUse ?? 0) >= limit.limit) return limit;
    }
    return undefined;
  }

  /** The state of each limit's key, made if new. */
  statesOf(limits: readonly SlotLimit[]): KeyState[] {
    return limits.map(({ key }) => {
      let state = this.states.get(key);
      if (state === undefined) {
        state = { key, inUse: 0, epoch: 0 };
        this.states.set(key, state);
      }
      return state;
    });
  }

  /** Counts a slot on every key; returns their epochs, for give(). */
  take(states: readonly KeyState[]): number[] {
    const epochs = states.map((s) => s.epoch);
    for (const state of states) state.inUse++;
    return epochs;
  }

  /** Gives a slot back to every key still at the epoch it was taken at. */
  give(states: readonly KeyState[], epochs: readonly number[]): void {
    for (let i = 0; i < states.length; i++) {
      const state = states[i]!;
      if (state.epoch !== epochs[i]) continue;
      state.inUse--;
      this.prune(state);
    }
  }

  /** Operator reset: every key in use under `tag` that `owns` accepts counts nothing from now on; returns them. */
  forget(tag: string, owns: (key: string) => boolean): KeyState[] {
    const dropped: KeyState[] = [];
    for (const state of this.states.values()) {
      if (state.inUse > 0 && state.key.startsWith(tag) && owns(state.key)) dropped.push(state);
    }
    for (const state of dropped) {
      state.epoch++;
      state.inUse = 0;
      this.prune(state);
    }
    return dropped;
  }

  /** Deletes a key nothing is in use on and no one waits for. */
  prune(state: KeyState): void {
    if (state.inUse <= 0 && !this.waitedFor(state) && this.states.get(state.key) === state) {
      this.states.delete(state.key);
      // A slot still pointing at it must not count against a new state for the same key.
      state.epoch++;
    }
  }

  clear(): void {
    this.states.clear();
  }
}
