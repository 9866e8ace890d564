/**
 * 1. In-process decisions/s. Per algorithm (each in its own process, as a deployment runs one), with
 * one rule and with three (user + tenant + tool), each run from fresh state: 10,000 users, 60
 * requests each, round-robin, so every user is admitted 30 times and refused 30 times (both
 * libraries, same keys, same limits, same order). Contenders:
 *  - floor: a bare Map counter doing the same number of lookups (get + set per rule);
 *  - RateLimiterMemory: consume() awaited per request; for three rules, three limiters consumed in
 *    turn as an RLF user would (await each; the first refusal stops the request);
 *  - Floodgate's MemoryStore.decide() with the Policy's pre-built checks and the system clock;
 *  - Floodgate's full limiter path: RateLimiter.prompt (+ tool for three rules) with a subject.
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ALGORITHMS } from '../../plugins/rate-limiter/algorithms/index.ts';
import { RateLimiter } from '../../plugins/rate-limiter/rate-limiter.ts';
import type { PolicyCheck } from '../../plugins/rate-limiter/policy.ts';
import { MemoryStore } from '../../plugins/rate-limiter/store/memory.ts';
import { systemClock } from '../../src/clock.ts';
import type { HookContext } from '../../src/hooks/schemas.ts';
import { IdentityHasher } from '../../src/logger.ts';
import {
  TENANT_RATE,
  TOOL,
  USER_RATE,
  buildChecks,
  limiterOptions,
  quietLogger,
  tenantId,
  userId,
  type AlgorithmName,
} from '../lib/fixtures.ts';
import { collectGarbage, interleave, pairedRatio, perSecond, rateFigure, timed, type Plan, type RateFigure, type Throughput } from '../lib/measure.ts';

export interface InProcessParams extends Plan {
  algorithm: AlgorithmName;
  users: number;
  rounds: number;
}

export interface RuleCountResult {
  rules: 1 | 3;
  decisions: number;
  floor: RateFigure;
  rlf: RateFigure;
  store: RateFigure;
  limiter: RateFigure;
  /** Median of the per-run ratios. */
  storeVsRlf: number;
  storeVsFloor: number;
  limiterVsRlf: number;
  /** Fraction of decisions admitted (the same for every contender by construction). */
  admitted: { floor: number; rlf: number; store: number; limiter: number };
}

export interface InProcessResult {
  algorithm: AlgorithmName;
  users: number;
  requestsPerUser: number;
  byRules: RuleCountResult[];
}

type Run = Throughput & { admitted: number };

export async function runInProcess(params: InProcessParams, log: (line: string) => void): Promise<InProcessResult> {
  const byRules: RuleCountResult[] = [];
  for (const rules of [1, 3] as const) {
    log(`in-process ${params.algorithm}, ${rules} rule${rules === 1 ? '' : 's'}`);
    byRules.push(await measure(params, rules));
  }
  return { algorithm: params.algorithm, users: params.users, requestsPerUser: params.rounds, byRules };
}

async function measure(params: InProcessParams, rules: 1 | 3): Promise<RuleCountResult> {
  const { algorithm, users, rounds } = params;
  const decisions = users * rounds;
  const checks = buildChecks(algorithm, rules, users);
  const keys = checks.map((list) => list.map((c) => c.key));
  const limits = checks[0]!.map((c) => c.rule.limit);
  const contexts: HookContext[] = Array.from({ length: users }, (_, i) => {
    const context: HookContext = { message_id: `m${i}`, channel: 'http', user_id: userId(i), conversation_id: `c${i}` };
    if (rules === 3) context.tenant_id = tenantId(i);
    return context;
  });

  const contenders = [
    { name: 'floor', run: () => floorRun(keys, limits, rounds) },
    { name: 'rlf', run: () => (rules === 1 ? rlfRun1(keys, rounds) : rlfRun3(keys, rounds)) },
    { name: 'store', run: () => storeRun(algorithm, checks, rounds) },
    { name: 'limiter', run: () => limiterRun(algorithm, rules, contexts, rounds) },
  ];
  const samples = await interleave<Run>(contenders, params, { beforeEach: collectGarbage });
  const rates = (name: string) => samples[name]!.map(perSecond);
  const admitted = (name: string) => samples[name]![0]!.admitted / decisions;
  return {
    rules,
    decisions,
    floor: rateFigure(samples.floor!),
    rlf: rateFigure(samples.rlf!),
    store: rateFigure(samples.store!),
    limiter: rateFigure(samples.limiter!),
    storeVsRlf: pairedRatio(rates('store'), rates('rlf')),
    storeVsFloor: pairedRatio(rates('store'), rates('floor')),
    limiterVsRlf: pairedRatio(rates('limiter'), rates('rlf')),
    admitted: { floor: admitted('floor'), rlf: admitted('rlf'), store: admitted('store'), limiter: admitted('limiter') },
  };
}

/** The floor: one Map get and set per rule, counting against its limit, nothing else. */
async function floorRun(keys: string[][], limits: number[], rounds: number): Promise<Run> {
  const counts = new Map<string, number>();
  let admitted = 0;
  const result = await timed(keys.length * rounds, () => {
    for (let r = 0; r < rounds; r++) {
      for (let u = 0; u < keys.length; u++) {
        const list = keys[u]!;
        let ok = true;
        for (let k = 0; k < list.length; k++) {
          const key = list[k]!;
          const count = (counts.get(key) ?? 0) + 1;
          counts.set(key, count);
          if (count > limits[k]!) ok = false;
        }
        if (ok) admitted++;
      }
    }
  });
  return { ...result, admitted };
}

async function rlfRun1(keys: string[][], rounds: number): Promise<Run> {
  const limiter = new RateLimiterMemory({ points: USER_RATE.points, duration: USER_RATE.seconds });
  let admitted = 0;
  const result = await timed(keys.length * rounds, async () => {
    for (let r = 0; r < rounds; r++) {
      for (let u = 0; u < keys.length; u++) {
        try {
          await limiter.consume(keys[u]![0]!);
          admitted++;
        } catch {
          // Refused: RLF rejects with its result object.
        }
      }
    }
  });
  await forget(limiter, keys, 0);
  return { ...result, admitted };
}

/**
 * Drops what an RLF limiter still holds (untimed). RateLimiterMemory keeps a timer per key until its
 * window ends; left running, a discarded limiter's 10,000 timers and records would stay on the heap
 * through the next contender's run. Every contender starts from a clean heap (see collectGarbage).
 */
async function forget(limiter: RateLimiterMemory, keys: string[][], rule: number): Promise<void> {
  for (const list of keys) await limiter.delete(list[rule]!);
}

/** Three limiters, consumed one after another; the first refusal ends the request (RLF's usual pattern). */
async function rlfRun3(keys: string[][], rounds: number): Promise<Run> {
  const user = new RateLimiterMemory({ points: USER_RATE.points, duration: USER_RATE.seconds });
  const tenant = new RateLimiterMemory({ points: TENANT_RATE.points, duration: TENANT_RATE.seconds });
  const tool = new RateLimiterMemory({ points: USER_RATE.points, duration: USER_RATE.seconds });
  let admitted = 0;
  const result = await timed(keys.length * rounds, async () => {
    for (let r = 0; r < rounds; r++) {
      for (let u = 0; u < keys.length; u++) {
        const [userKey, tenantKey, toolKey] = keys[u]!;
        try {
          await user.consume(userKey!);
          await tenant.consume(tenantKey!);
          await tool.consume(toolKey!);
          admitted++;
        } catch {
          // Refused by one of them.
        }
      }
    }
  });
  await forget(user, keys, 0);
  await forget(tenant, keys, 1);
  await forget(tool, keys, 2);
  return { ...result, admitted };
}

async function storeRun(algorithm: AlgorithmName, checks: (readonly PolicyCheck[])[], rounds: number): Promise<Run> {
  const store = new MemoryStore(ALGORITHMS[algorithm], 100_000);
  let admitted = 0;
  const result = await timed(checks.length * rounds, () => {
    for (let r = 0; r < rounds; r++) {
      for (let u = 0; u < checks.length; u++) {
        if (store.decide(checks[u]!, systemClock.now()).allowed) admitted++;
      }
    }
  });
  return { ...result, admitted };
}

async function limiterRun(algorithm: AlgorithmName, rules: 1 | 3, contexts: HookContext[], rounds: number): Promise<Run> {
  // A tool message pays a prompt decision (user + tenant) and a tool decision (tenant + tool): the
  // tenant is charged twice per message, so its limit is doubled to bind where it does above.
  const options = limiterOptions(algorithm, rules, rules === 3 ? { by_tenant: `${2 * TENANT_RATE.points}/m` } : {});
  const limiter = await RateLimiter.open(options, {
    clock: systemClock,
    logger: quietLogger('info'),
    identity: new IdentityHasher('bench-identity-salt'),
    mode: 'enforce',
  });
  let admitted = 0;
  const result = await timed(contexts.length * rounds, () => {
    for (let r = 0; r < rounds; r++) {
      for (let u = 0; u < contexts.length; u++) {
        const context = contexts[u]!;
        // Requests built as an adapter builds them from its host's event (no spread: it costs a sixth of the path).
        const prompt = limiter.prompt({
          channel: context.channel,
          user: context.user_id,
          tenant: context.tenant_id,
          callId: context.message_id,
        }) as { continue: boolean };
        if (rules === 1) {
          if (prompt.continue) admitted++;
        } else if (
          prompt.continue &&
          (limiter.tool({ channel: context.channel, user: context.user_id, tenant: context.tenant_id, tool: TOOL }) as { continue: boolean }).continue
        ) {
          admitted++;
        }
      }
    }
  });
  return { ...result, admitted };
}
