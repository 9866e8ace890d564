import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../clock.ts';
import { ExpiringMap } from '../util/expiring-map.ts';

export const SESSION_COOKIE = 'fg_admin';
const SESSION_TTL_MS = 8 * 3600_000;
const MAX_SESSIONS = 1000;

/** The session cookie's value in a Cookie header, or undefined. */
function sessionId(headers: IncomingHttpHeaders): string | undefined {
  const cookie = headers.cookie;
  if (typeof cookie !== 'string') return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Browser sessions of the operator's pages: a login with the admin token gets a random session id in
 * a secure, HTTP-only, same-site cookie, so the token is typed once and never travels in a URL.
 * Sessions live in this process (a restart logs everyone out), last eight hours, and are bounded.
 */
export class AdminSessions {
  private readonly sessions = new ExpiringMap<{ expiresAt: number }>(MAX_SESSIONS);

  constructor(private readonly clock: Clock) {}

  /** A new session; its Set-Cookie header value. */
  open(): string {
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, { expiresAt: this.clock.now() + SESSION_TTL_MS }, this.clock.now());
    return `${SESSION_COOKIE}=${id}; Path=/v1/admin/; HttpOnly; Secure; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`;
  }

  /** Whether the request carries a live session. */
  valid(headers: IncomingHttpHeaders): boolean {
    const id = sessionId(headers);
    return id !== undefined && this.sessions.get(id, this.clock.now()) !== undefined;
  }

  /** Ends the request's session; the Set-Cookie header value that clears it. */
  close(headers: IncomingHttpHeaders): string {
    const id = sessionId(headers);
    if (id !== undefined) this.sessions.delete(id);
    return `${SESSION_COOKIE}=; Path=/v1/admin/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
  }
}
