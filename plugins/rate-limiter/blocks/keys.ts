import { flattened } from '../../../src/plugin-sdk.ts';

/** The suffix of a block record's key: it lives beside its subject's rate keys, under their hash tag. */
export const BLOCK_SUFFIX = '|block';

/** The block record of the subject whose rules live at `key` (a user's or a tenant's base key). */
export function blockKey(key: string): string {
  return flattened(key + BLOCK_SUFFIX);
}
