import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Whether `given` (a header value, possibly absent or repeated) is exactly `expected`, compared in
 * constant time: both sides are hashed first, so the comparison neither stops at the first wrong
 * character nor reveals the secret's length.
 */
export function sameSecret(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  return timingSafeEqual(digest(given), digest(expected));
}
