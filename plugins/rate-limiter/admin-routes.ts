import { canonicalAddress, errorMessage, type Logger, type PluginContext, type RouteResponse } from '../../src/plugin-sdk.ts';
import type { LimitsAdmin, LimitsQuery } from './view.ts';

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
  const tenant = fields('tenant');
  if (tenant !== undefined && typeof tenant !== 'boolean') problems.push('tenant: expected true or false');
  else if (tenant === true && (tenant_id === undefined || tenant_id === '')) problems.push('tenant: needs tenant_id');
  if (problems.length > 0 || user_id === undefined) {
    return { ok: false, response: { status: 400, body: { error: 'bad_request', message: problems.join('; ') } } };
  }
  const query: LimitsQuery = tenant_id === undefined || tenant_id === '' ? { channel, user_id } : { channel, user_id, tenant_id };
  if (tenant === true) query.tenant = true;
  return { ok: true, query };
}

/**
 * `address` (instead of user_id): a client address, for by_address's state. Undefined when the
 * request names none; a 400 when it is not an IP address.
 */
function readAddress(value: unknown): { address: string } | { response: RouteResponse } | undefined {
  if (value === undefined || value === null) return undefined;
  const address = typeof value === 'string' ? canonicalAddress(value.trim()) : undefined;
  if (address === undefined) return { response: { status: 400, body: { error: 'bad_request', message: 'address: expected an IPv4 or IPv6 address' } } };
  return { address };
}

function jsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The operator's routes over the limits view: `GET /v1/admin/limits?user_id=&tenant_id=&channel=`
 * shows each rule's state without consuming anything; `POST /v1/admin/limits/reset` (same fields as
 * JSON) clears one user's state. Answers and logs never repeat the ids asked about.
 */
export function mountLimitsRoutes(admin: PluginContext<unknown>['admin'], view: LimitsAdmin, logger: Logger): void {
  admin.route('GET', '/v1/admin/limits', async (request) => {
    const address = readAddress(request.query.get('address'));
    if (address !== undefined) return 'response' in address ? address.response : { status: 200, body: await view.inspectAddress(address.address) };
    const read = readQuery((name) => (name === 'tenant' ? undefined : (request.query.get(name) ?? undefined)));
    if (!read.ok) return read.response;
    return { status: 200, body: await view.inspect(read.query) };
  });

  admin.route('POST', '/v1/admin/limits/reset', async (request) => {
    const body = jsonObject(request.body);
    if (body === undefined) return { status: 400, body: { error: 'bad_request', message: 'body must be a JSON object with user_id or address' } };
    const address = readAddress(body.address);
    if (address !== undefined && 'response' in address) return address.response;
    const read = address === undefined ? readQuery((name) => body[name]) : undefined;
    if (read !== undefined && !read.ok) return read.response;
    const channel = read?.query.channel;
    let result: unknown;
    try {
      result = address !== undefined ? await view.resetAddress(address.address) : await view.reset(read!.query);
    } catch (error) {
      // Redis is away: nothing was reset there, and saying so beats a reset that silently missed.
      logger.warn({ channel, err_message: errorMessage(error) }, 'admin reset failed: the shared backend cannot be reached');
      return { status: 503, headers: { 'retry-after': '1' }, body: { error: 'backend_unavailable', message: 'the shared rate-limit state cannot be reached; nothing was reset, try again' } };
    }
    if (read === undefined) logger.info('admin reset one client address’s rate-limit state');
    else logger.info({ channel, tenant: read.query.tenant === true }, 'admin reset one user’s rate-limit state');
    return { status: 200, body: result };
  });
}
