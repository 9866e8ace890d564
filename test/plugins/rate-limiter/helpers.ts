import type { DestinationStream } from 'pino';
import type { Algorithm, Rule } from '../../../plugins/rate-limiter/algorithms/types.ts';

/** A pino destination that keeps every log line in memory, parsed. */
export class CapturedLog implements DestinationStream {
  readonly raw: string[] = [];

  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line.trim() !== '') this.raw.push(line);
  }

  get entries(): Record<string, unknown>[] {
    return this.raw.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Entries at a pino level name ('warn' = 40, 'error' = 50, 'info' = 30). */
  at(level: 'info' | 'warn' | 'error'): Record<string, unknown>[] {
    const number = { info: 30, warn: 40, error: 50 }[level];
    return this.entries.filter((e) => e.level === number);
  }
}

export interface Outcome {
  /** Time of the request. */
  t: number;
  /** 0 when admitted, else the wait the algorithm announced. */
  wait: number;
}

/** Feeds `arrivals` through `algorithm` (check, then consume when admitted); returns the final state. */
export function replay<S>(algorithm: Algorithm<S>, rule: Rule, arrivals: readonly number[]): { state: S | undefined; outcomes: Outcome[] } {
  let state: S | undefined;
  const outcomes: Outcome[] = [];
  for (const t of arrivals) {
    const wait = algorithm.check(state, t, rule);
    if (wait === 0) state = algorithm.consume(state, t, rule);
    outcomes.push({ t, wait });
  }
  return { state, outcomes };
}

/** How many requests at `now`, one after another, are admitted (stops at `cap`). Mutates `state`. */
export function admitBurst<S>(algorithm: Algorithm<S>, rule: Rule, state: S | undefined, now: number, cap: number): number {
  let admitted = 0;
  while (admitted < cap && algorithm.check(state, now, rule) === 0) {
    state = algorithm.consume(state, now, rule);
    admitted++;
  }
  return admitted;
}
