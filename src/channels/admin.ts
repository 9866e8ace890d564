import type { Services, LimitsQuery } from '../host/services.ts';
import type { Logger } from '../logger.ts';
import { sameSecret } from '../util/secrets.ts';
import type { HttpChannel } from './http.ts';
import type { RouteRequest, RouteResponse } from './routes.ts';
import { parseJsonBody } from './wire.ts';

const UNAUTHORIZED: RouteResponse = {
  status: 401,
  headers: { 'www-authenticate': 'Bearer' },
  body: { error: 'unauthorized', message: 'send the admin token as "Authorization: Bearer <token>"' },
};

const NOT_AVAILABLE: RouteResponse = {
  status: 404,
  body: { error: 'not_available', message: 'no rate limiter is loaded' },
};

function bearer(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** user_id (required), tenant_id and channel (default "http") from a query or a JSON body. */
function readQuery(fields: (name: string) => unknown): { ok: true; query: LimitsQuery } | { ok: false; response: RouteResponse } {
  const problems: string[] = [];
  const text = (name: string, required: boolean): string | undefined => {
    const value = fields(name);
    if (value === undefined || value === null) {
      if (required) problems.push(`${name}: required`);
      return undefined;
    }
    if (typeof value !== 'string' || value.length > 256) {
      problems.push(`${name}: expected a string of at most 256 characters`);
      return undefined;
    }
    return value;
  };
  const user_id = text('user_id', true);
  const tenant_id = text('tenant_id', false);
  const channel = text('channel', false) ?? 'http';
  if (problems.length > 0 || user_id === undefined) {
    return { ok: false, response: { status: 400, body: { error: 'bad_request', message: problems.join('; ') } } };
  }
  return { ok: true, query: tenant_id === undefined || tenant_id === '' ? { channel, user_id } : { channel, user_id, tenant_id } };
}

/**
 * The operator's view of the rate limiter, on the HTTP channel, only when an admin token is set:
 * `GET /v1/admin/limits?user_id=&tenant_id=&channel=` shows each rule's state without consuming
 * anything; `POST /v1/admin/limits/reset` (same fields as JSON) clears one user's state. The token is
 * compared in constant time and never logged; responses and logs never repeat the ids asked about.
 */
export function mountAdminApi(http: HttpChannel, token: string, services: Services, logger: Logger): void {
  const authorized = (request: RouteRequest) => {
    const given = bearer(request.headers.authorization);
    return given !== undefined && sameSecret(given, token);
  };

  http.mount('GET', '/v1/admin/limits', async (request) => {
    if (!authorized(request)) return UNAUTHORIZED;
    const read = readQuery((name) => request.query.get(name) ?? undefined);
    if (!read.ok) return read.response;
    const limits = services.get('limits');
    if (!limits) return NOT_AVAILABLE;
    return { status: 200, body: await limits.inspect(read.query) };
  });

  http.mount('POST', '/v1/admin/limits/reset', async (request) => {
    if (!authorized(request)) return UNAUTHORIZED;
    const parsed = parseJsonBody(request.body);
    if (!parsed.ok || typeof parsed.value !== 'object' || parsed.value === null) {
      return { status: 400, body: { error: 'bad_request', message: 'body must be a JSON object with user_id' } };
    }
    const body = parsed.value as Record<string, unknown>;
    const read = readQuery((name) => body[name]);
    if (!read.ok) return read.response;
    const limits = services.get('limits');
    if (!limits) return NOT_AVAILABLE;
    const result = await limits.reset(read.query);
    logger.info({ channel: read.query.channel }, 'admin reset one user’s rate-limit state');
    return { status: 200, body: result };
  });
}
