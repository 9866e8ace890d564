import type { Clock, PluginContext } from '../../../src/plugin-sdk.ts';
import { STATUS_PAGE } from './page.ts';
import { statusSnapshot, type StatusSources } from './snapshot.ts';

/**
 * The live status page at `GET /v1/admin/status` and the readings it polls at
 * `GET /v1/admin/status/data`, both behind the admin token (a browser signs in at /v1/admin/login).
 */
export function mountStatusRoutes(admin: PluginContext<unknown>['admin'], sources: StatusSources, clock: Clock): void {
  admin.route('GET', '/v1/admin/status', async () => ({
    status: 200,
    text: STATUS_PAGE,
    contentType: 'text/html; charset=utf-8',
    headers: { 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' },
  }));
  admin.route('GET', '/v1/admin/status/data', async () => ({ status: 200, body: statusSnapshot(sources, clock.now()) }));
}
