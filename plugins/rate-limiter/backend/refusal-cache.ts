import type { Clock } from '../../../src/plugin-sdk.ts';
import { ALGORITHMS } from '../algorithms/index.ts';
import type { AlgorithmName } from '../algorithms/types.ts';
import type { BreakerState } from '../breaker.ts';
import type { SlotRequest, SlotResult } from '../concurrency/types.ts';
import type { KeyScope } from '../keys.ts';
import type { RedisClient } from '../store/redis.ts';
import { readStates } from '../store/redis-state.ts';
import type { Decision, RuleCheck, RuleResult } from '../store/types.ts';
import { CachedRefusals, SNAPSHOT_MAX_AGE_MS, tagOf, type ReadTicket } from './cached-refusals.ts';
import { InvalidationChannel } from './invalidation-channel.ts';
import { evaluate, type Snapshot } from './refusal-snapshot.ts';
import type { Backend } from './types.ts';

/** A backend whose adjust() says when it is done (the Redis backend's does). */
export interface AdjustingBackend extends Backend {
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): void | Promise<void>;
}

export interface RefusalCacheOptions {
  /** The Redis backend the cache stands in front of. */
  inner: AdjustingBackend;
  /** Its client: state reads and invalidations go through it. */
  client: RedisClient;
  algorithm: AlgorithmName;
  prefix: string;
  /** Most hash tags held (like max_keys for the store). */
  maxTags: number;
  clock: Clock;
  /** Whether other subjects' requests also charge a check's key (see refusal-snapshot.ts). */
  chargedByOthers: (check: RuleCheck) => boolean;
  /**
   * 'redis' (production): the snapshot's times are Redis's, mapped from this process's clock by the
   * read's TIME. 'caller': the state was written at the callers' times (tests that replay the shared
   * decision tables), so a snapshot is evaluated at the `now` it is asked at.
   */
  timeSource?: 'redis' | 'caller';
  /** Pub/sub for invalidations; off only in tests that show what happens without it. */
  invalidations?: boolean;
  /** Called for each refusal answered from memory (the metric). */
  answered?: () => void;
}

/**
 * A flood that costs Redis nothing: a decorator over the Redis backend that answers a refused
 * subject's requests from this process's memory, with exactly the refusal Redis would give, until
 * it would not refuse any more. It never admits: every admission is Redis's, so the cache cannot let
 * more than the limit through; what it must get right is to refuse only what Redis would refuse.
 *
 * How (see refusal-snapshot.ts for why the answers are exact): once Redis has refused a request's
 * keys twice within a second, their state is read in one transaction and kept as a snapshot; a
 * request with the same keys is then answered from it while some rule of it refuses every request
 * with those keys (a rule of requests, or a token budget that cannot take even one token), and no key
 * others charge (a tenant's) still admits. Anything else goes to Redis, as does everything while the
 * circuit breaker is not closed.
 *
 * What can change a refused key before its time, and what the cache does about it:
 * - a refund (a cancelled call gives back its request and tokens, a settled call its unused
 *   estimate) or any adjustment: the tag is dropped here when it is sent and again when it is done,
 *   and announced on the invalidation channel, which drops it on every instance;
 * - an operator's reset (forget): likewise, once Redis has deleted the keys;
 * - a reload that changes a limit or window: a snapshot only answers for the rules it was read for;
 * - something no announcement covers (pub/sub down, another config on the same Redis): a snapshot
 *   is never answered from more than SNAPSHOT_MAX_AGE_MS after it was read.
 * Escalating blocks: a refusal of a subject with a block counts a strike in Redis, so such a request
 * is answered from memory only once its block is in force, with Redis's answer (blocked, its level,
 * the time left) until the block ends: while it lasts nothing about the subject changes.
 *
 * While Redis stops answering, a flood already cached goes on being refused (truly: Redis's state is
 * what was read) until its next background read fails, at most REFRESH_AFTER_MS plus a timeout; then
 * its requests go to Redis, and the breaker and on_backend_error take over.
 */
export class RefusalCache implements Backend {
  private readonly refusals: CachedRefusals;
  private readonly channel: InvalidationChannel | undefined;
  private readonly caller: boolean;
  /** Reads and adjustments on their way (see settled()). */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly options: RefusalCacheOptions) {
    this.refusals = new CachedRefusals(options.maxTags, ALGORITHMS[options.algorithm], options.chargedByOthers, (ticket, checks) =>
      this.read(ticket, checks),
    );
    this.caller = options.timeSource === 'caller';
    this.channel =
      options.invalidations === false
        ? undefined
        : InvalidationChannel.open(options.client, options.prefix, {
            dropped: (tags) => {
              for (const tag of tags) this.refusals.drop(tag);
            },
            resubscribed: () => this.refusals.clear(),
          });
  }

  get keys(): number {
    return this.options.inner.keys;
  }

  get blocks(): number {
    return this.options.inner.blocks;
  }

  get breaker(): BreakerState | undefined {
    return this.options.inner.breaker;
  }

  /** Tags with something cached (tests, diagnostics). */
  get cachedTags(): number {
    return this.refusals.size;
  }

  /** Whether invalidations are being heard (tests, diagnostics). */
  get listening(): boolean {
    return this.channel?.listening ?? false;
  }

  /** Resolves once every state read and adjustment started so far has landed (tests). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  decide<T>(checks: readonly RuleCheck[], now: number, next: (decision: Decision) => T | Promise<T>): T | Promise<T> {
    const { inner } = this.options;
    // While Redis fails, the failure policy decides, as it would without the cache.
    if ((inner.breaker ?? 'closed') === 'closed') {
      const cached = this.refusals.answer(checks, now);
      if (cached !== undefined) {
        this.options.answered?.();
        return next(cached);
      }
    }
    return inner.decide(checks, now, (decision) => {
      if (!decision.allowed) {
        if (decision.blocked !== undefined) this.refusals.blocked(checks, decision, now);
        // Under escalating blocks each refusal counts a strike in Redis: no snapshot stands in for it.
        else if (decision.results.length > 0 && !checks.some((check) => check.block !== undefined)) this.refused(checks, now);
      }
      return next(decision);
    });
  }

  acquire<T>(request: SlotRequest, next: (slot: SlotResult) => T | Promise<T>): T | Promise<T> {
    return this.options.inner.acquire(request, next);
  }

  /** Settles once Redis has the change and every cache has dropped the tag (a caller may wait for it). */
  adjust(decision: Decision, checks: readonly RuleCheck[], deltas: readonly number[], now: number): void | Promise<void> {
    const { inner } = this.options;
    // Only an admitted decision that charged something is ever adjusted (the stores ignore the rest).
    if (!decision.allowed || decision.results.length === 0 || checks.length === 0 || deltas.every((d) => !d)) {
      return inner.adjust(decision, checks, deltas, now);
    }
    const tag = tagOf(checks[0]!.key);
    // Dropped now, so no request is answered from the old state while the change is on its way; and
    // again once Redis has it, with every other instance told, so no read from before it stays.
    this.refusals.drop(tag);
    const changed = () => {
      this.refusals.drop(tag);
      return this.channel?.announce(tag);
    };
    const done = inner.adjust(decision, checks, deltas, now);
    if (done === undefined) {
      changed();
      return;
    }
    const settled = done.then(changed, changed).then(() => undefined);
    this.track(settled);
    return settled;
  }

  peek(checks: readonly RuleCheck[]): ReturnType<Backend['peek']> {
    return this.options.inner.peek(checks);
  }

  inUse(keys: readonly string[]): Promise<number[]> {
    return this.options.inner.inUse(keys);
  }

  /** The reset reaches every instance's cache: dropped here, and announced before the operator is answered. */
  async forget(scope: KeyScope, owns: (key: string) => boolean): Promise<number> {
    const removed = await this.options.inner.forget(scope, owns);
    this.refusals.drop(scope.tag);
    await this.channel?.announce(scope.tag);
    return removed;
  }

  async close(): Promise<void> {
    this.channel?.close();
    this.refusals.clear();
    await this.options.inner.close();
  }

  /** Redis refused: on the second refusal in a while, the keys' state is read for the next ones. */
  private refused(checks: readonly RuleCheck[], now: number): void {
    const ticket = this.refusals.refused(checks, now);
    if (ticket !== undefined) this.read(ticket, checks);
  }

  private read(ticket: ReadTicket, checks: readonly RuleCheck[]): void {
    const { client, algorithm, prefix, clock } = this.options;
    const keys = checks.map(({ key, rule }) => ({ key: `${prefix}:${key}`, rule }));
    const sentAt = this.caller ? ticket.now : clock.now();
    const read = readStates(client, algorithm, keys).then(
      ({ states, serverTime }) => {
        const snapshot: Snapshot = {
          keys: checks.map((check) => check.key),
          rules: checks.map(({ rule }) => ({ limit: rule.limit, windowMs: rule.windowMs, unit: rule.unit ?? 'requests', calendar: rule.calendar })),
          states,
          // Redis read its TIME after the read was sent: at a local time t, its clock shows at most this.
          serverTime: this.caller ? (t) => t : (t) => serverTime + (t - sentAt),
          expiresAt: sentAt + SNAPSHOT_MAX_AGE_MS,
        };
        const shared = evaluate(snapshot, checks, ticket.now, ALGORITHMS[algorithm], this.options.chargedByOthers) === 'shared';
        this.refusals.landed(ticket, snapshot, shared);
      },
      // Redis may be failing: the next request goes to it, and the breaker and the failure policy
      // take over from there.
      () => this.refusals.drop(ticket.tag),
    );
    this.track(read);
  }

  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }
}
