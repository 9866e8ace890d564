import { calendarWindow } from './calendar-window.ts';
import { fixedWindow } from './fixed-window.ts';
import { slidingLog } from './sliding-log.ts';
import { slidingWindow } from './sliding-window.ts';
import { tokenBucket } from './token-bucket.ts';
import type { Algorithm, AlgorithmName, Rule } from './types.ts';

export * from './types.ts';
export { calendarWindow, fixedWindow, slidingLog, slidingWindow, tokenBucket };

export const ALGORITHMS: Record<AlgorithmName, Algorithm<unknown>> = {
  sliding_window: slidingWindow as Algorithm<unknown>,
  fixed_window: fixedWindow as Algorithm<unknown>,
  token_bucket: tokenBucket as Algorithm<unknown>,
};

/** The algorithm that counts `rule` under the configured one (a tokens rule may need another). */
export function algorithmFor(algorithm: Algorithm<unknown>, unit: 'requests' | 'tokens' | undefined): Algorithm<unknown> {
  return unit === 'tokens' ? (algorithm.tokens ?? algorithm) : algorithm;
}

/** The algorithm that counts `rule`: a calendar window's own, else the configured one (or its tokens variant). */
export function counterFor(algorithm: Algorithm<unknown>, rule: Rule): Algorithm<unknown> {
  return rule.calendar !== undefined ? (calendarWindow as Algorithm<unknown>) : algorithmFor(algorithm, rule.unit);
}
