import { CONTINUE, errorMessage, type Clock, type HookResult, type IdentityHasher, type Logger, type MessageBus, type MetricsRegistry } from '../../src/plugin-sdk.ts';
import { MemoryBackend } from './backend/memory.ts';
import { RedisBackend } from './backend/redis.ts';
import { RefusalCache } from './backend/refusal-cache.ts';
import type { Backend } from './backend/types.ts';
import { AddressLimiter, type AddressRequest } from './engine/address-limiter.ts';
import { Limiter, type PromptRequest, type ToolRequest } from './engine/limiter.ts';
import type { Outcome } from './engine/outcome.ts';
import { chargedByOthers, ruleBase } from './policy.ts';
import { RefusalLog } from './engine/refusal-log.ts';
import type { PromptEnd } from './engine/reservations.ts';
import type { RateLimiterOptions } from './options.ts';
import { Presenter } from './present/presenter.ts';
import { LimiterTelemetry } from './telemetry.ts';
import { LimitsView } from './view.ts';
import type { StatusSources } from './status/snapshot.ts';
import { TopSubjects } from './status/top-subjects.ts';

export interface RateLimiterHost {
  clock: Clock;
  logger: Logger;
  /** Salted hashes that stand for keys in log lines. */
  identity: IdentityHasher;
  mode: 'enforce' | 'permissive';
  /** Metrics and bus events, where the host has them. */
  metrics?: MetricsRegistry;
  bus?: MessageBus;
}

/** Settings that decide where state lives: changing any of them on reload opens a new backend. */
function backendSettings(options: RateLimiterOptions): string {
  const { algorithm, backend, max_keys, redis_url, redis_cluster, redis_key_prefix, redis_timeout_ms, on_backend_error, concurrency_lease_ms, refusal_cache } =
    options;
  return JSON.stringify({ algorithm, backend, max_keys, redis_url, redis_cluster, redis_key_prefix, redis_timeout_ms, on_backend_error, concurrency_lease_ms, refusal_cache });
}

async function openBackend(options: RateLimiterOptions, host: RateLimiterHost, telemetry: LimiterTelemetry | undefined): Promise<Backend> {
  if (options.backend === 'memory') return new MemoryBackend(options, host.clock);
  const redis = await RedisBackend.open(options, {
    clock: host.clock,
    logger: host.logger,
    events: {
      failed: (error) => telemetry?.backendFailed(errorMessage(error)),
      breakerChanged: (state, previous) => telemetry?.breakerChanged(state, previous),
    },
  });
  if (!options.refusal_cache) return redis;
  return new RefusalCache({
    inner: redis,
    client: redis.client,
    algorithm: options.algorithm,
    prefix: options.redis_key_prefix,
    maxTags: options.max_keys,
    clock: host.clock,
    chargedByOthers,
    answered: telemetry ? () => telemetry.cachedRefusal() : undefined,
  });
}

/**
 * The rate limiter, put together for a host: the backend its options ask for, the engine deciding,
 * the presenter turning outcomes into answers, and the observers (metrics, events, logs). Hosts call
 * prompt() and tool() with their subject and get a HookResult; promptEnded() settles a prompt's end.
 */
export class RateLimiter {
  readonly engine: Limiter;
  readonly addresses: AddressLimiter;
  readonly view: LimitsView;
  /** What the status page shows: totals, the backend's health, the most refused subjects. */
  readonly status: StatusSources;
  private readonly presenter: Presenter;
  private readonly refusals: RefusalLog;
  private readonly present = (outcome: Outcome): HookResult => this.presenter.result(outcome);
  /** An admitted request goes on without headers: nothing would send them (the route answers for itself). */
  private readonly presentRequest = (outcome: Outcome | undefined): HookResult =>
    outcome === undefined || outcome.kind === 'admitted' ? CONTINUE : this.presenter.result(outcome);

  private constructor(
    private options: RateLimiterOptions,
    /** The backend in use: replaced when a reload moves the state. */
    private readonly current: { backend: Backend },
    private readonly telemetry: LimiterTelemetry | undefined,
    private readonly host: RateLimiterHost,
  ) {
    const { clock, logger, identity } = host;
    const top = new TopSubjects(identity);
    this.refusals = new RefusalLog({ clock, logger, identity }, options.max_keys, host.mode);
    this.presenter = new Presenter(options, clock);
    this.engine = new Limiter(options, current.backend, {
      clock,
      mode: host.mode,
      timed: telemetry !== undefined,
      observe: (outcome) => {
        telemetry?.observe(outcome);
        this.refusals.observe(outcome);
        if (outcome.kind !== 'admitted' && outcome.kind !== 'unavailable') top.count(outcome.subject, clock.now());
      },
      shadow: {
        refused: (step, subject, check) => {
          telemetry?.decided(step, subject.channel, 'shadow_refused', ruleBase(check.rule), undefined, 0);
          this.refusals.shadowRefused(step, check);
        },
        failedLater: (step, error) => {
          telemetry?.fault();
          this.refusals.failedLater(step, errorMessage(error));
        },
      },
      settled: telemetry ? (outcome) => telemetry.settled(outcome) : undefined,
    });
    this.addresses = new AddressLimiter(options, current.backend, {
      clock,
      timed: telemetry !== undefined,
      observe: (outcome, routeGroup) => {
        telemetry?.observe(outcome);
        this.refusals.observe(outcome, routeGroup);
        if (outcome.kind !== 'admitted' && outcome.kind !== 'unavailable') top.count(outcome.subject, clock.now());
      },
    });
    this.view = new LimitsView({
      policy: () => this.engine.policy,
      addressPolicy: () => this.addresses.current,
      peek: (checks) => this.current.backend.peek(checks),
      inUse: (keys) => this.current.backend.inUse(keys),
      forget: (scope, owns) => this.current.backend.forget(scope, owns),
      now: () => clock.now(),
    });
    this.status = {
      totals: () => telemetry?.totals(),
      backend: () => this.options.backend,
      breaker: () => this.current.backend.breaker,
      keys: () => this.current.backend.keys,
      blocks: () => this.current.backend.blocks,
      top,
    };
  }

  /** Opens the backend the options ask for (memory, or Redis: connecting, or starting with the breaker open). */
  static async open(options: RateLimiterOptions, host: RateLimiterHost): Promise<RateLimiter> {
    const current = {} as { backend: Backend };
    const telemetry = RateLimiter.telemetryFor(host, current);
    current.backend = await openBackend(options, host, telemetry);
    return new RateLimiter(options, current, telemetry, host);
  }

  /** Over a backend of the host's own (another store, or a test's). */
  static using(options: RateLimiterOptions, host: RateLimiterHost, backend: Backend): RateLimiter {
    const current = { backend };
    return new RateLimiter(options, current, RateLimiter.telemetryFor(host, current), host);
  }

  private static telemetryFor(host: RateLimiterHost, current: { backend?: Backend }): LimiterTelemetry | undefined {
    const { metrics, bus } = host;
    if (metrics === undefined || bus === undefined) return undefined;
    return new LimiterTelemetry(metrics, bus, {
      keys: () => current.backend?.keys ?? 0,
      breaker: () => current.backend?.breaker,
      blocks: () => current.backend?.blocks ?? 0,
    });
  }

  prompt(request: PromptRequest): HookResult | Promise<HookResult> {
    return this.engine.prompt(request, this.present);
  }

  tool(request: ToolRequest): HookResult | Promise<HookResult> {
    return this.engine.tool(request, this.present);
  }

  /**
   * An HTTP request before its body is read, by its client address (by_address). `call` identifies
   * the request to authFailed(): the same object for both.
   */
  request(request: AddressRequest, call?: object): HookResult | Promise<HookResult> {
    return this.addresses.request(request, call, this.presentRequest);
  }

  /** The request checked with `call` failed authentication: it costs by_address.failed_auth_cost. */
  authFailed(call?: object): void | Promise<void> {
    return this.addresses.authFailed(call);
  }

  promptEnded(callId: string, end: PromptEnd): void {
    this.engine.promptEnded(callId, end);
  }

  /** Whether a prompt fetch may be held until promptEnded() (a token budget or a concurrency cap applies). */
  get holdsPrompts(): boolean {
    return this.engine.policy.holdsPrompts;
  }

  /** How long a prompt may wait for a concurrency slot (the host's hook timeout is extended by it). */
  queueMs(): number {
    return this.engine.queueMs();
  }

  /**
   * Takes a reloaded config. Counts carry over while the backend settings stay, in every window the
   * new config still has; when they change (another algorithm or backend), a new backend opens and
   * counts start afresh there. Says which it was, and which windows are new (they count from now).
   */
  async reconfigure(options: RateLimiterOptions, mode: 'enforce' | 'permissive'): Promise<{ kept: boolean; newWindows: string[] }> {
    const kept = backendSettings(options) === backendSettings(this.options);
    const before = new Set(this.engine.policy.windows());
    const previous = this.current.backend;
    if (!kept) this.current.backend = await openBackend(options, this.host, this.telemetry);
    this.options = options;
    this.engine.reconfigure(options, mode, this.current.backend);
    this.addresses.reconfigure(options, this.current.backend);
    this.presenter.reconfigure(options);
    this.refusals.reconfigure(mode);
    if (!kept) await previous.close();
    return { kept, newWindows: this.engine.policy.windows().filter((window) => !before.has(window)) };
  }

  async close(): Promise<void> {
    this.telemetry?.dispose();
    await this.current.backend.close();
  }
}
