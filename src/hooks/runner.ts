import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { Clock } from '../clock.ts';
import type { OnError, PluginMode } from '../config/schema.ts';
import { ErrorCode, FloodgateError, errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { KeyedThrottle } from '../util/throttle.ts';
import {
  HOOK_NAMES,
  HOOK_PAYLOADS,
  HookResult,
  isHookName,
  type HookName,
  type HookPayload,
  type Violation,
} from './schemas.ts';

/** What a handler gets besides the payload. */
export interface HookCall {
  /**
   * Aborts when the orchestrator gives up on the step (the client went away, the message is done):
   * a handler that holds something for the step (a concurrency slot, a reservation) lets go of it.
   */
  signal: AbortSignal | undefined;
  /**
   * Called when the runner stops waiting for the handler (it timed out): its signal aborts with
   * `reason`, so a handler still waiting for something (a concurrency slot) gives up and keeps nothing.
   */
  abandon?(reason: unknown): void;
}

export type HookHandler<N extends HookName> = (payload: HookPayload<N>, call?: HookCall) => HookResult | Promise<HookResult>;

export interface HookRegistration<N extends HookName = HookName> {
  plugin: string;
  hook: N;
  handler: HookHandler<N>;
  priority: number;
  mode: Exclude<PluginMode, 'disabled'>;
  onError: OnError;
  /**
   * How long the handler may wait its turn (a concurrency queue), on top of the hook timeout; read on
   * every call, so a reloaded setting takes effect at once.
   */
  queueMs?: () => number;
}

/** What running one hook decided for a step. */
export type HookOutcome =
  | { stopped: false; headers: Record<string, string> | undefined }
  | { stopped: true; violation: Violation; plugin: string };

const checkResult = TypeCompiler.Compile(HookResult);
const checkPayload = Object.fromEntries(
  HOOK_NAMES.map((name) => [name, TypeCompiler.Compile(HOOK_PAYLOADS[name])]),
) as Record<HookName, TypeCheck<(typeof HOOK_PAYLOADS)[HookName]>>;

/** A hook's compiled payload check, picked without a keyed lookup (which goes megamorphic here). */
function payloadCheck(hook: HookName): TypeCheck<(typeof HOOK_PAYLOADS)[HookName]> {
  switch (hook) {
    case 'prePromptFetch':
      return checkPrePromptFetch;
    case 'postPromptFetch':
      return checkPostPromptFetch;
    default:
      return checkPayload[hook];
  }
}
const checkPrePromptFetch = checkPayload.prePromptFetch;
const checkPostPromptFetch = checkPayload.postPromptFetch;

/**
 * isThenable() for handler results only. The shared one, inlined everywhere, reads `then` off every
 * kind of object in the process and so does it the slowest way; here it sees only hook results.
 */
function isPending(result: HookResult | Promise<HookResult>): result is Promise<HookResult> {
  return typeof (result as { then?: unknown } | null)?.then === 'function';
}

const ERROR_LOG_INTERVAL_MS = 10_000;

/** The call of a hook run without a signal (postPromptFetch, for one): one for all of them. */
const NO_SIGNAL: HookCall = Object.freeze({ signal: undefined });

/** A step that goes on, with the headers gathered so far. */
type Passed = Extract<HookOutcome, { stopped: false }>;

/** A step that goes on with no headers (nobody registered, or nobody added any); one for every such call. */
const NOTHING: Passed = Object.freeze({ stopped: false, headers: undefined });

/** A refusal for plugins set to fail closed; it names no user, only that the step is unavailable. */
function failClosedViolation(): Violation {
  return {
    code: 'plugin_unavailable',
    reason: 'A safety check could not run',
    description: 'Sorry, I cannot take messages right now. Please try again in a moment.',
    httpStatus: 503,
    headers: {},
    details: {},
  };
}

/**
 * The common answer, `{ continue: true }` with string headers, recognised without the compiled
 * schema's per-header work (an array per result and a regular expression per header, several times
 * the cost of a plugin's whole decision). Whatever this does not accept goes to the schema,
 * which stays the judge: everything accepted here the schema accepts too.
 */
function isPlainContinue(result: unknown): boolean {
  if (typeof result !== 'object' || result === null || (result as { continue?: unknown }).continue !== true) return false;
  if (Array.isArray(result)) return false;
  const headers = (result as { headers?: unknown }).headers;
  if (headers === undefined) return true;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return false;
  if (headers instanceof Date || headers instanceof Uint8Array) return false;
  for (const name in headers) if (typeof (headers as Record<string, unknown>)[name] !== 'string') return false;
  return true;
}

function checkHook(registration: { plugin: string; hook: HookName }): void {
  if (!isHookName(registration.hook)) {
    throw new FloodgateError(
      ErrorCode.HookUnknown,
      `plugin "${registration.plugin}" registered unknown hook "${String(registration.hook)}"; known hooks: ${HOOK_NAMES.join(', ')}`,
    );
  }
}

/**
 * Runs the handlers registered for a hook, awaited in priority order (lower first). An enforcing
 * plugin's violation stops the step; a permissive one's is ignored here (the plugin reports it); a
 * plugin that throws, times out or answers nonsense is handled by its `on_error`.
 */
export class HookRunner {
  /** Replaced whole, never edited: a message running its hooks keeps the lists it started with. */
  private handlers = new Map<HookName, HookRegistration[]>();
  private readonly errorLogThrottle = new KeyedThrottle(1024);

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  register<N extends HookName>(registration: HookRegistration<N>): void {
    checkHook(registration);
    const list = [...(this.handlers.get(registration.hook) ?? []), registration as unknown as HookRegistration];
    // Stable sort: equal priorities keep registration (config) order.
    list.sort((a, b) => a.priority - b.priority);
    this.handlers = new Map(this.handlers).set(registration.hook, list);
  }

  unregisterPlugin(plugin: string): void {
    this.handlers = new Map([...this.handlers].map(([hook, list]) => [hook, list.filter((r) => r.plugin !== plugin)]));
  }

  /**
   * Makes `registrations` the whole table, in one step (a reload): messages already running their
   * hooks finish under the old one. Equal priorities keep list order. An unknown hook throws and
   * changes nothing.
   */
  replace(registrations: readonly HookRegistration[]): void {
    for (const registration of registrations) checkHook(registration);
    const table = new Map<HookName, HookRegistration[]>();
    for (const registration of registrations) {
      let list = table.get(registration.hook);
      if (list === undefined) table.set(registration.hook, (list = []));
      list.push(registration);
    }
    for (const list of table.values()) list.sort((a, b) => a.priority - b.priority);
    this.handlers = table;
  }

  has(hook: HookName): boolean {
    return (this.handlers.get(hook)?.length ?? 0) > 0;
  }

  /**
   * Runs the hook's handlers. The outcome itself when every handler answered synchronously (a decision
   * made in memory costs no promise and no tick), else a promise of it: callers simply await it. A
   * malformed payload throws here and now. `call` is what every handler gets, made by the caller: one
   * per step, whose signal may be made only when a handler reads it (see StepCall).
   */
  run<N extends HookName>(hook: N, payload: HookPayload<N>, call: HookCall = NO_SIGNAL): HookOutcome | Promise<HookOutcome> {
    const list = this.handlers.get(hook);
    if (list === undefined || list.length === 0) return NOTHING;
    return this.start(list, hook, payload, call);
  }

  private start(list: readonly HookRegistration[], hook: HookName, payload: unknown, call: HookCall): HookOutcome | Promise<HookOutcome> {
    const check = payloadCheck(hook);
    if (!check.Check(payload)) {
      const first = check.Errors(payload).First();
      throw new FloodgateError(ErrorCode.HookResult, `invalid ${hook} payload at ${first?.path}: ${first?.message}`);
    }
    return this.runFrom(list, 0, payload, call, NOTHING);
  }

  /**
   * Runs `list` from `index` on. Handlers that answer synchronously (the common case: a decision
   * made in memory) are run in a plain loop, with no promise or tick of their own; the first one
   * that answers with a promise hands the rest of the list to runAfter(). `passed` is where the step
   * stands (the headers so far).
   */
  private runFrom(
    list: readonly HookRegistration[],
    index: number,
    payload: unknown,
    call: HookCall,
    passed: Passed,
  ): HookOutcome | Promise<HookOutcome> {
    for (let i = index; i < list.length; i++) {
      const registration = list[i]!;
      let outcome: HookOutcome;
      try {
        const returned = (registration.handler as (p: unknown, c: HookCall) => HookResult | Promise<HookResult>)(payload, call);
        if (isPending(returned)) return this.runAfter(list, i, payload, call, passed, returned);
        outcome = this.apply(registration, this.validated(registration, returned), passed);
      } catch (error) {
        outcome = this.failed(registration, error, passed);
      }
      if (outcome.stopped) return outcome;
      passed = outcome;
    }
    return passed;
  }

  /** Waits for the handler at `index` (with the hook timeout), then runs the rest of the list. */
  private async runAfter(
    list: readonly HookRegistration[],
    index: number,
    payload: unknown,
    call: HookCall,
    passed: Passed,
    pending: Promise<HookResult>,
  ): Promise<HookOutcome> {
    const registration = list[index]!;
    let outcome: HookOutcome;
    try {
      outcome = this.apply(registration, this.validated(registration, await this.withTimeout(pending, registration, call)), passed);
    } catch (error) {
      outcome = this.failed(registration, error, passed);
    }
    if (outcome.stopped) return outcome;
    return this.runFrom(list, index + 1, payload, call, outcome);
  }

  /** What a valid result does to the step: stops it (an enforcing plugin's violation) or adds headers. */
  private apply(registration: HookRegistration, result: HookResult, passed: Passed): HookOutcome {
    if (result.continue) {
      if (result.headers === undefined) return passed;
      const { headers } = passed;
      return { stopped: false, headers: headers ? { ...headers, ...result.headers } : result.headers };
    }
    if (registration.mode === 'enforce') return { stopped: true, violation: result.violation, plugin: registration.plugin };
    this.logIgnoredViolation(registration, result.violation);
    return passed;
  }

  /** A plugin that threw, timed out or answered nonsense: its on_error decides. */
  private failed(registration: HookRegistration, error: unknown, passed: Passed): HookOutcome {
    this.logPluginError(registration, error);
    // A permissive plugin never blocks traffic, not even when it fails.
    if (registration.onError === 'fail_closed' && registration.mode === 'enforce') {
      return { stopped: true, violation: failClosedViolation(), plugin: registration.plugin };
    }
    return passed;
  }

  private validated(registration: HookRegistration, result: unknown): HookResult {
    if (isPlainContinue(result) || checkResult.Check(result)) return result as HookResult;
    const first = checkResult.Errors(result).First();
    throw new FloodgateError(
      ErrorCode.HookResult,
      `returned an invalid ${registration.hook} result (${first?.path || '/'}: ${first?.message})`,
    );
  }

  private withTimeout(promise: Promise<HookResult>, registration: HookRegistration, call: HookCall): Promise<HookResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = this.timeoutMs + (registration.queueMs?.() ?? 0);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new FloodgateError(ErrorCode.HookTimeout, `did not answer ${registration.hook} within ${timeoutMs} ms`);
        reject(error);
        // Nobody waits for the handler any more: it must not go on to take what it would never give back.
        call.abandon?.(error);
      }, timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  private logIgnoredViolation(registration: HookRegistration, violation: Violation): void {
    // One line per plugin and violation code every 10 s: a permissive trial of a flood stays readable.
    const key = `${registration.plugin}\0violation\0${violation.code}`;
    if (!this.errorLogThrottle.pass(key, this.clock.now(), ERROR_LOG_INTERVAL_MS)) return;
    this.logger.info(
      { plugin: registration.plugin, hook: registration.hook, code: violation.code, reason: violation.reason },
      'violation ignored (permissive)',
    );
  }

  private logPluginError(registration: HookRegistration, error: unknown): void {
    // A broken plugin fails on every message; one line per plugin and hook every 10 s is enough.
    const key = `${registration.plugin}\0${registration.hook}`;
    if (!this.errorLogThrottle.pass(key, this.clock.now(), ERROR_LOG_INTERVAL_MS)) return;
    this.logger.error(
      {
        plugin: registration.plugin,
        hook: registration.hook,
        on_error: registration.onError,
        code: error instanceof FloodgateError ? error.code : undefined,
        err_message: errorMessage(error),
      },
      registration.onError === 'fail_closed' && registration.mode === 'enforce'
        ? 'plugin failed; message refused (fail_closed)'
        : 'plugin failed; message let through (fail_open)',
    );
  }
}
