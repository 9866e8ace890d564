/** One concurrency cap a call is counted against: at most `limit` calls hold a slot of `key` at once. */
export interface SlotLimit {
  key: string;
  limit: number;
  /** e.g. 'user' | 'tenant': named in a refusal */
  label: string;
}

export interface SlotRequest {
  /**
   * All must have room; a slot is taken on every one of them or on none. Keys must be distinct; on a
   * Redis Cluster they must share a hash tag. None at all: granted at once (nothing to count).
   */
  limits: readonly SlotLimit[];
  /** How long to wait for room; 0 refuses at once when a limit is full. */
  queueTimeoutMs: number;
  /** Aborted while waiting: refused with reason 'aborted'. Aborted while held: the slot is released. */
  signal?: AbortSignal;
}

export type SlotResult =
  | {
      ok: true;
      /** Gives the slot back; calling it again does nothing. */
      release(): void;
    }
  | {
      ok: false;
      /** `unavailable`: the shared backend could not answer and on_backend_error is "closed". */
      reason: 'timeout' | 'aborted' | 'unavailable';
      /** The limit that was full (for 'aborted', the one waited on, or the first). */
      limit: SlotLimit;
      waitedMs: number;
    };

export interface ConcurrencyGate {
  /** Synchronous when it can answer at once (memory, room available); a promise otherwise. */
  acquire(request: SlotRequest): SlotResult | Promise<SlotResult>;
  /** Slots this process holds now (metrics). */
  readonly held: number;
  /** How many slots each key has in use (operator's view), without acquiring. */
  inUse(keys: readonly string[]): Promise<number[]>;
  /**
   * Operator reset: drops every slot of the keys under hash tag `tag` (a key starts with it) that `owns`
   * accepts; returns how many keys were dropped. Calls still running keep going; their release() then
   * frees nothing on the dropped keys.
   */
  forget?(tag: string, owns: (key: string) => boolean): Promise<number>;
  /** Releases everything this process holds, refuses every waiter ('aborted'), stops timers. */
  close(): Promise<void>;
}

/** The refusal for a request that never got to wait (aborted before, or the gate is closed). */
export function refusal(request: SlotRequest, reason: 'timeout' | 'aborted' | 'unavailable', limit: SlotLimit | undefined, waitedMs: number): SlotResult {
  return { ok: false, reason, limit: limit ?? request.limits[0]!, waitedMs };
}
