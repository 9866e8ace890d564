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
  // eslint-disable-next-line no-control-regex
  if (/^[\x20-\x7e]*$/.test(trimmed)) return trimmed.toLowerCase();
  return trimmed.normalize('NFKC').trim().toLowerCase();
}

export function normalizeToolName(raw: string): string {
  return normalizeId(raw);
}

/** Per user, scoped by channel: user 7 on http is not user 7 on telegram. The id comes last. */
export function userKey(channel: string, userId: string): string {
  return `u:${channel}:${userId}`;
}

/** Tenants are global: one organisation's limit covers all its channels. */
export function tenantKey(tenantId: string): string {
  return `t:${tenantId}`;
}

/** Per user and tool. The tool name is length-prefixed so no tool/id pair can collide with another. */
export function toolKey(channel: string, tool: string, userId: string): string {
  return `tool:${channel}:${tool.length}:${tool}:${userId}`;
}
