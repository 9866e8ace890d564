import type { Clock } from '../../../src/plugin-sdk.ts';
import { ALGORITHMS } from '../algorithms/index.ts';
import { MemoryConcurrencyGate } from '../concurrency/memory.ts';
import type { SlotRequest, SlotResult } from '../concurrency/types.ts';
import type { KeyScope } from '../keys.ts';
import type { RateLimiterOptions } from '../options.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Decision, RuleCheck, RuleResult } from '../store/types.ts';
import { blocksOf } from '../blocks/memory.ts';
import type { BlockStanding } from '../blocks/types.ts';
import type { Backend } from './types.ts';

/** One process's state: every decision synchronous, every slot in this process. */
export class MemoryBackend implements Backend {
  readonly store: MemoryStore;
  readonly gate: MemoryConcurrencyGate;
  readonly breaker = undefined;

  constructor(
    options: Pick<RateLimiterOptions, 'algorithm' | 'max_keys' | 'concurrency_lease_ms'>,
    private readonly clock: Clock,
  ) {
    this.store = new MemoryStore(ALGORITHMS[options.algorithm], options.max_keys, clock);
    this.gate = new MemoryConcurrencyGate({ leaseMs: options.concurrency_lease_ms, clock });
  }

  get keys(): number {
    return this.store.size;
  }

  get blocks(): number {
    return this.store.blocks.count(this.clock.now());
  }

  decide<T>(checks: readonly RuleCheck[], now: number, next: (decision: Decision) => T | Promise<T>): T | Promise<T> {
    return next(this.store.decide(checks, now));
  }

  acquire<T>(request: SlotRequest, next: (slot: SlotResult) => T | Promise<T>): T | Promise<T> {
    return this.gate.take(request, next);
  }

  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): void {
    this.store.adjust(decision, checks, deltas, now);
  }

  async peek(checks: readonly RuleCheck[]): Promise<{ results: RuleResult[]; local: boolean; blocks?: BlockStanding[] }> {
    const now = this.clock.now();
    const blocks = blocksOf(checks);
    const results = this.store.peek(checks, now);
    return blocks.length === 0 ? { results, local: false } : { results, local: false, blocks: this.store.peekBlocks(blocks, now) };
  }

  inUse(keys: readonly string[]): Promise<number[]> {
    return this.gate.inUse(keys);
  }

  async forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number> {
    return this.store.forget(owns) + (await this.gate.forget(scope.tag, owns));
  }

  async close(): Promise<void> {
    await Promise.all([this.store.close(), this.gate.close()]);
  }
}
