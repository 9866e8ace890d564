/** Timing and statistics shared by every section. */

/** The median of `values` (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-th percentile (0-100) of already sorted values, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Ratios are taken run by run (both figures from the same round), then their median. */
export function pairedRatio(numerators: readonly number[], denominators: readonly number[]): number {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(numerators.length, denominators.length); i++) ratios.push(numerators[i]! / denominators[i]!);
  return median(ratios);
}

/** A full collection, when the process runs with --expose-gc (the bench's workers do). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

export interface Plan {
  /** Rounds run and thrown away first (JIT warm-up, caches, connection pools). */
  warmup: number;
  /** Rounds kept: every figure is the median over these. */
  runs: number;
}

export interface Contender<T> {
  name: string;
  /** One measured run. */
  run(): T | Promise<T>;
}

/**
 * Runs every contender once per round, round after round, so a change in the machine's load hits all
 * of them alike; the order rotates each round so none is always first. Returns each contender's
 * samples from the kept rounds, by name, in round order (sample i of every contender is round i).
 */
export async function interleave<T>(
  contenders: readonly Contender<T>[],
  plan: Plan,
  options: { beforeEach?: () => void | Promise<void>; progress?: (round: number) => void } = {},
): Promise<Record<string, T[]>> {
  const samples: Record<string, T[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
  const rounds = plan.warmup + plan.runs;
  for (let round = 0; round < rounds; round++) {
    options.progress?.(round);
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(k + round) % contenders.length]!;
      await options.beforeEach?.();
      const sample = await contender.run();
      if (round >= plan.warmup) samples[contender.name]!.push(sample);
    }
  }
  return samples;
}

/** How many operations ran in how long. */
export interface Throughput {
  ops: number;
  seconds: number;
}

export const perSecond = (t: Throughput): number => t.ops / t.seconds;

/** Times a synchronous or asynchronous body that performs `ops` operations. */
export async function timed(ops: number, body: () => void | Promise<void>): Promise<Throughput> {
  const started = performance.now();
  await body();
  return { ops, seconds: (performance.now() - started) / 1000 };
}

/** Median rate, the per-run rates, and how far the runs spread (max/min - 1). */
export interface RateFigure {
  median: number;
  runs: number[];
  spread: number;
}

export function rateFigure(samples: readonly Throughput[]): RateFigure {
  const runs = samples.map(perSecond);
  const spread = runs.length > 1 ? Math.max(...runs) / Math.min(...runs) - 1 : 0;
  return { median: median(runs), runs: runs.map((r) => Math.round(r)), spread: round(spread, 3) };
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
