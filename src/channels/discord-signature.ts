import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** DER header of an SPKI Ed25519 public key; the raw 32 key bytes follow it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** How far a request's timestamp may be from now before it counts as a replay. */
export const SIGNATURE_TOLERANCE_MS = 5 * 60_000;

/** The application's public key, from the 64 hex characters the Developer Portal shows. */
export function discordPublicKey(hex: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, 'hex')]), format: 'der', type: 'spki' });
}

export type SignatureCheck = 'valid' | 'missing' | 'malformed' | 'stale' | 'invalid';

/**
 * Checks Discord's signature of an interaction: Ed25519 over the `X-Signature-Timestamp` header followed
 * by the raw body, in `X-Signature-Ed25519` (hex). A timestamp (Unix seconds) more than five minutes
 * from `nowMs` is refused even when signed, so a captured request cannot be replayed later.
 */
export function checkSignature(key: KeyObject, headers: IncomingHttpHeaders, body: Buffer, nowMs: number): SignatureCheck {
  const signature = headers['x-signature-ed25519'];
  const timestamp = headers['x-signature-timestamp'];
  if (signature === undefined || timestamp === undefined) return 'missing';
  if (typeof signature !== 'string' || !/^[0-9a-fA-F]{128}$/.test(signature)) return 'malformed';
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return 'malformed';
  if (Math.abs(nowMs - Number(timestamp) * 1000) > SIGNATURE_TOLERANCE_MS) return 'stale';
  const signed = Buffer.concat([Buffer.from(timestamp, 'utf8'), body]);
  return verify(null, signed, key, Buffer.from(signature, 'hex')) ? 'valid' : 'invalid';
}
