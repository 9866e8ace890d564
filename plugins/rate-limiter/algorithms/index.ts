import { fixedWindow } from './fixed-window.ts';
import { slidingWindow } from './sliding-window.ts';
import { tokenBucket } from './token-bucket.ts';
import type { Algorithm, AlgorithmName } from './types.ts';

export * from './types.ts';
export { fixedWindow, slidingWindow, tokenBucket };

export const ALGORITHMS: Record<AlgorithmName, Algorithm<unknown>> = {
  sliding_window: slidingWindow as Algorithm<unknown>,
  fixed_window: fixedWindow as Algorithm<unknown>,
  token_bucket: tokenBucket as Algorithm<unknown>,
};
