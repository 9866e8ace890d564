import type { BlockCheck, BlockStanding } from '../blocks/types.ts';
import type { BreakerState } from '../breaker.ts';
import type { SlotRequest, SlotResult } from '../concurrency/types.ts';
import type { KeyScope } from '../keys.ts';
import type { Decision, RuleCheck, RuleResult } from '../store/types.ts';

/**
 * Where the limiter's state lives: the rate store and the concurrency slots, with one failure policy.
 * A step hands its continuation to the backend, which calls it with the answer: at once in memory
 * (read-decide-write in one synchronous step), when the answer arrives on Redis. So the limiter is
 * written once, in one style, and the hook runner alone deals with "value or promise".
 */
export interface Backend {
  /** Decides every check together (all or nothing) and hands the decision to `next`. */
  decide<T>(checks: readonly RuleCheck[], now: number, next: (decision: Decision) => T | Promise<T>): T | Promise<T>;
  /**
   * Takes a slot on every limit or on none, waiting up to the request's queue time, and hands the
   * result to `next`. Under on_backend_error "closed" a backend that cannot answer refuses with
   * reason "unavailable".
   */
  acquire<T>(request: SlotRequest, next: (slot: SlotResult) => T | Promise<T>): T | Promise<T>;
  /**
   * Changes what an admitted decision charged (see RateStore.adjust); a backend failure is counted, not
   * thrown. On a shared backend, a promise that settles (never rejects) once the change is made.
   */
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): void | Promise<void>;
  /**
   * How each check stands, charging nothing (the operator's view); `local` when the shared backend
   * could not be read. `blocks`: how each distinct block of the checks stands (absent when they have none).
   */
  peek(checks: readonly RuleCheck[]): Promise<{ results: RuleResult[]; local: boolean; blocks?: BlockStanding[] }>;
  /** Concurrency slots in use per key. */
  inUse(keys: readonly string[]): Promise<number[]>;
  /** Drops one user's state (the operator's reset); rejects when the shared backend cannot be reached. */
  forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number>;
  /** Keys held in this process (metrics). */
  readonly keys: number;
  /** Escalating blocks in force held in this process's memory (metrics). */
  readonly blocks: number;
  /** The shared backend's circuit breaker; undefined in memory. */
  readonly breaker: BreakerState | undefined;
  close(): Promise<void>;
}
