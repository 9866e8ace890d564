import { describe, expect, it } from 'vitest';
import { mountLimitsRoutes } from '../../../plugins/rate-limiter/admin-routes.ts';
import type { LimitsAdmin } from '../../../plugins/rate-limiter/view.ts';
import type { AdminRouteHandler } from '../../../src/host/plugin.ts';
import { createLogger } from '../../../src/logger.ts';
import { CapturedLog } from './helpers.ts';

/** The limiter's admin routes as a plugin mounts them, called as the gateway calls them (token already checked). */
function routes(view: LimitsAdmin) {
  const mounted = new Map<string, AdminRouteHandler>();
  const log = new CapturedLog();
  mountLimitsRoutes({ route: (method, path, handler) => void mounted.set(`${method} ${path}`, handler) }, view, createLogger({ destination: log }));
  const reset = (body: unknown) =>
    mounted.get('POST /v1/admin/limits/reset')!({ headers: {}, body: Buffer.from(JSON.stringify(body)), signal: new AbortController().signal, query: new URLSearchParams() });
  return { reset, log };
}

describe('admin routes of the rate limiter', () => {
  it('a reset that cannot reach the shared backend says so with 503 and resets nothing, naming no one', async () => {
    const { reset, log } = routes({
      inspect: async () => ({}),
      inspectAddress: async () => ({}),
      resetAddress: async () => ({}),
      reset: async () => {
        throw new Error('Connection is closed.');
      },
    });
    const answer = await reset({ user_id: 'alice-secret' });
    expect(answer).toMatchObject({ status: 503, body: { error: 'backend_unavailable' } });
    expect(log.at('warn')).toMatchObject([{ msg: 'admin reset failed: the shared backend cannot be reached', err_message: 'Connection is closed.' }]);
    expect(JSON.stringify(answer) + log.raw.join('')).not.toContain('alice-secret');
  });

  it('a reset that works answers what the view did', async () => {
    const { reset } = routes({
      inspect: async () => ({}),
      reset: async () => ({ reset: true, keys_removed: 2 }),
      inspectAddress: async () => ({}),
      resetAddress: async () => ({}),
    });
    expect(await reset({ user_id: 'alice' })).toEqual({ status: 200, body: { reset: true, keys_removed: 2 } });
  });

  it('a reset of the tenant too needs a tenant and a boolean, named in the answer', async () => {
    const asked: unknown[] = [];
    const { reset } = routes({
      inspect: async () => ({}),
      reset: async (query) => (asked.push(query), { reset: true, keys_removed: 0 }),
      inspectAddress: async () => ({}),
      resetAddress: async () => ({}),
    });
    expect(await reset({ user_id: 'alice', tenant: 'yes' })).toMatchObject({ status: 400, body: { message: 'tenant: expected true or false' } });
    expect(await reset({ user_id: 'alice', tenant: true })).toMatchObject({ status: 400, body: { message: 'tenant: needs tenant_id' } });
    expect((await reset({ user_id: 'alice', tenant_id: 'acme', tenant: true })).status).toBe(200);
    expect(asked).toEqual([{ channel: 'http', user_id: 'alice', tenant_id: 'acme', tenant: true }]);
  });
});
