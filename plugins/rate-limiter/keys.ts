import { flattened } from '../../src/plugin-sdk.ts';
import { BLOCK_SUFFIX } from './blocks/keys.ts';

// Made once: a regular expression literal is a new object each time it is evaluated (on every message here).
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const TAG_CHAR = /[{}%]/;
const TAG_CHARS = /[{}%]/g;

/**
 * Rate-limit keys. Ids are normalised so that " Alice", "alice" and "ＡＬＩＣＥ" cannot get three
 * buckets: trimmed, NFKC-normalised and case-folded. An empty or blank user id is the channel's
 * anonymous user (one shared bucket), never a bucket of its own per spelling of nothing.
 * Keys are the only place ids go; they never reach logs or replies.
 */
export function normalizeId(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') return '';
  // ASCII ids (the common case) need neither NFKC nor the full case fold.
  if (PRINTABLE_ASCII.test(trimmed)) return trimmed.toLowerCase();
  return trimmed.normalize('NFKC').trim().toLowerCase();
}

export function normalizeToolName(raw: string): string {
  return normalizeId(raw);
}

/** Braces delimit Redis hash tags; escape them (and the escape character) inside ids. */
function escapeId(id: string): string {
  return TAG_CHAR.test(id) ? id.replace(TAG_CHARS, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) : id;
}

/**
 * Where one request's keys live. Every key of a request starts with the same hash tag, so on a Redis
 * Cluster they share a slot and one script can decide them together. When a tenant rule applies the
 * tag is the tenant's (its users' keys live under it); otherwise it is the user's.
 */
export interface KeyScope {
  tag: string;
  /** What tells the users apart inside a tenant's tag; empty under a user's own tag. */
  member: string;
}

/** `channel` scopes users: user 7 on http is not user 7 on telegram. Tenants span channels. */
export function keyScope(channel: string, user: string, tenant: string | undefined): KeyScope {
  const member = `${channel}:${escapeId(user)}`;
  return tenant === undefined ? { tag: `{${member}}`, member: '' } : { tag: `{t:${escapeId(tenant)}}`, member };
}

export function tenantKey(scope: KeyScope): string {
  return scope.tag;
}

export function userKey(scope: KeyScope): string {
  return `${scope.tag}u:${scope.member}`;
}

/** The tool name is length-prefixed, so no tool/user pair can spell another one's key. */
export function toolKey(scope: KeyScope, tool: string): string {
  return `${scope.tag}tool:${tool.length}:${tool}:${scope.member}`;
}

/**
 * One user, for per-user state that never leaves the process (reply cooldowns). Flattened: it is
 * looked up at once, on every refusal of a flood.
 */
export function identityKey(channel: string, user: string): string {
  return flattened(`${channel}:${user}`);
}

/** Whether `key` holds the tenant's own state (its counts, slots and block; none of its users'). */
export function tenantOwnsKey(scope: KeyScope, key: string): boolean {
  // The tenant's keys are its tag and a suffix ("|<window ms>", "|tok|...", "|conc", "|block"); its
  // users' keys go on with "u:" or "tool:".
  const tag = tenantKey(scope);
  return scope.member !== '' && key.startsWith(tag) && (key.length === tag.length || key[tag.length] === '|');
}

/** Whether `key` holds this user's own state (their user and tool keys; never the tenant's). */
export function ownsKey(scope: KeyScope, key: string): boolean {
  // Suffixes of one setting's keys: "|conc" (concurrency slots), "|tok" (tokens), "|<window ms>" or
  // "|cal:<unit>:<time zone>" (a calendar window); "|block" (the subject's block record).
  const base = key
    .replace(/\|block$/, '')
    .replace(/\|conc$/, '')
    .replace(/\|\d+$/, '')
    .replace(/\|cal:[a-z]+:[^|]*$/, '')
    .replace(/\|tok$/, '');
  return base === userKey(scope) || (base.startsWith(`${scope.tag}tool:`) && base.endsWith(`:${scope.member}`));
}

/**
 * Where one client address's keys live (its group: the address, or its IPv6 prefix): a tag of its
 * own, so its keys share a slot on a Cluster and one scan finds them. Never logged.
 */
export function addressScope(group: string): KeyScope {
  return { tag: `{a:${escapeId(group)}}`, member: '' };
}

/** One route group's key under an address's tag (a rule's suffix follows). */
export function addressKey(scope: KeyScope, routeGroup: string): string {
  return `${scope.tag}r:${routeGroup}`;
}

/** Whether `key` holds state of the address whose scope this is (its counts and its block). */
export function ownsAddressKey(scope: KeyScope, key: string): boolean {
  return key.startsWith(`${scope.tag}r:`) || key === `${scope.tag}${BLOCK_SUFFIX}`;
}
