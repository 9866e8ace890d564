import { sameSecret } from '../util/secrets.ts';
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

/**
 * The operator's API: routes that plugins add under `/v1/admin/`, served on the HTTP channel only when
 * an admin token is set, each behind that token (compared in constant time, never logged). A route
 * belongs to the plugin that added it and goes when that plugin stops.
 */
export class AdminRoutes {
  private readonly owners = new Map<string, string>();

  constructor(
    private readonly http: HttpChannel | undefined,
    private readonly token: string | undefined,
  ) {}

  add(owner: string, method: string, path: string, handler: RouteHandler): void {
    if (!path.startsWith(ADMIN_PREFIX) || path.length === ADMIN_PREFIX.length) {
      throw new Error(`an admin route's path must start with ${ADMIN_PREFIX} and name something: ${path}`);
    }
    const taken = this.owners.get(path);
    if (taken !== undefined) throw new Error(`admin route ${path} is already served by plugin "${taken}"`);
    this.owners.set(path, owner);
    const { http, token } = this;
    if (http === undefined || token === undefined) return;
    http.mount(method, path, (request: RouteRequest) => (authorized(request, token) ? handler(request) : Promise.resolve(UNAUTHORIZED)), 'admin');
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

function authorized(request: RouteRequest, token: string): boolean {
  const given = bearer(request.headers.authorization);
  return given !== undefined && sameSecret(given, token);
}
