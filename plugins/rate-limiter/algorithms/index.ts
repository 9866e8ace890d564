import { fixedWindow } from './fixed-window.ts';
import { slidingLog } from './sliding-log.ts';
import { slidingWindow } from './sliding-window.ts';
import { tokenBucket } from './token-bucket.ts';
import type { Algorithm, AlgorithmName } from './types.ts';

export * from './types.ts';
export { fixedWindow, slidingLog, slidingWindow, tokenBucket };

export const ALGORITHMS: Record<AlgorithmName, Algorithm<unknown>> = {
  sliding_window: slidingWindow as Algorithm<unknown>,
  fixed_window: fixedWindow as Algorithm<unknown>,
  token_bucket: tokenBucket as Algorithm<unknown>,
};

/** The algorithm that counts `rule` under the configured one (a tokens rule may need another). */
export function algorithmFor(algorithm: Algorithm<unknown>, unit: 'requests' | 'tokens' | undefined): Algorithm<unknown> {
  return unit === 'tokens' ? (algorithm.tokens ?? algorithm) : algorithm;
}
