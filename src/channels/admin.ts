import type { Clock } from '../clock.ts';
import { sameSecret } from '../util/secrets.ts';
import { loginPage } from './admin-login.ts';
import { AdminSessions } from './admin-sessions.ts';
import type { HttpChannel } from './http.ts';
import { ADMIN_PREFIX, type RouteHandler, type RouteRequest, type RouteResponse } from './routes.ts';

const UNAUTHORIZED: RouteResponse = {
  status: 401,
  headers: { 'www-authenticate': 'Bearer' },
  body: { error: 'unauthorized', message: 'send the admin token as "Authorization: Bearer <token>"' },
};

function bearer(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

const LOGIN_PATH = `${ADMIN_PREFIX}login`;
/** Where the login form posts the token (one method per path on the HTTP channel). */
const SESSION_PATH = `${ADMIN_PREFIX}session`;
const LOGOUT_PATH = `${ADMIN_PREFIX}logout`;
const HTML = 'text/html; charset=utf-8';
/** An operator's page is never framed by another site and never tells another site where it came from. */
export const PAGE_HEADERS: Record<string, string> = { 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' };

/** Where a login may send the browser on: a path of the admin API, nothing else (no open redirect). */
function safeNext(next: string | null): string {
  return next !== null && next.startsWith(ADMIN_PREFIX) && !next.startsWith(`${ADMIN_PREFIX}/`) && !/[\\\s]/.test(next)
    ? next
    : `${ADMIN_PREFIX}status`;
}

/**
 * The operator's API: routes that plugins add under `/v1/admin/`, served on the HTTP channel only when
 * an admin token is set, each behind that token (compared in constant time, never logged). Scripts
 * send it as a bearer token; a browser signs in once at `/v1/admin/login` and then carries a session
 * cookie (see AdminSessions). A route belongs to the plugin that added it and goes when that plugin stops.
 */
export class AdminRoutes {
  private readonly owners = new Map<string, string>();
  private readonly sessions: AdminSessions;

  constructor(
    private readonly http: HttpChannel | undefined,
    private readonly token: string | undefined,
    clock: Clock,
  ) {
    this.sessions = new AdminSessions(clock);
    if (http !== undefined && token !== undefined) this.mountLogin(http, token);
  }

  add(owner: string, method: string, path: string, handler: RouteHandler): void {
    if (!path.startsWith(ADMIN_PREFIX) || path.length === ADMIN_PREFIX.length) {
      throw new Error(`an admin route's path must start with ${ADMIN_PREFIX} and name something: ${path}`);
    }
    const taken = this.owners.get(path);
    if (taken !== undefined) throw new Error(`admin route ${path} is already served by plugin "${taken}"`);
    this.owners.set(path, owner);
    const { http, token } = this;
    if (http === undefined || token === undefined) return;
    http.mount(method, path, (request: RouteRequest) => {
      if (this.authorized(request, token)) return handler(request);
      // A browser asking for a page is sent to sign in, and back here afterwards.
      if (method === 'GET' && wantsHtml(request)) return Promise.resolve(seeOther(`${LOGIN_PATH}?next=${encodeURIComponent(path)}`));
      return Promise.resolve(UNAUTHORIZED);
    }, 'admin');
  }

  private authorized(request: RouteRequest, token: string): boolean {
    const given = bearer(request.headers.authorization);
    return given !== undefined ? sameSecret(given, token) : this.sessions.valid(request.headers);
  }

  private mountLogin(http: HttpChannel, token: string): void {
    http.mount('GET', LOGIN_PATH, async (request) => page(200, loginPage(safeNext(request.query.get('next')))), 'admin');
    http.mount('POST', SESSION_PATH, async (request) => {
      const form = new URLSearchParams(request.body.toString('utf8'));
      const next = safeNext(form.get('next'));
      if (!sameSecret(form.get('token') ?? undefined, token)) return page(401, loginPage(next, 'That is not the admin token.'));
      return seeOther(next, { 'set-cookie': this.sessions.open() });
    }, 'admin');
    http.mount('POST', LOGOUT_PATH, async (request) => seeOther(LOGIN_PATH, { 'set-cookie': this.sessions.close(request.headers) }), 'admin');
  }

  /** Takes away every route `owner` added (the plugin stopped). */
  withdraw(owner: string): void {
    for (const [path, who] of this.owners) {
      if (who !== owner) continue;
      this.owners.delete(path);
      this.http?.unmount(path);
    }
  }
}

function wantsHtml(request: RouteRequest): boolean {
  const accept = request.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

function page(status: number, html: string): RouteResponse {
  return { status, text: html, contentType: HTML, headers: PAGE_HEADERS };
}

function seeOther(location: string, headers: Record<string, string> = {}): RouteResponse {
  return { status: 303, headers: { location, 'cache-control': 'no-store', ...headers } };
}
