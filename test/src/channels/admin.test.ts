import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ManualClock } from '../../../src/clock.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { Gateway } from '../../../src/gateway.ts';
import { httpRequest } from '../support/http-client.ts';
import { captureLogs } from '../support/logs.ts';

const CONFIG_PATH = join(fileURLToPath(new URL('../../fixtures/', import.meta.url)), 'config.json');
const TOKEN = 'admin-token-0123456789abcdef';

async function start(http: Record<string, unknown>, plugins: unknown[] = [{ name: 'limits_probe', path: './plugins/limits-probe/index.ts' }]) {
  const logs = captureLogs();
  const loaded = parseConfig(JSON.stringify({ channels: { http: { port: 0, ...http } }, plugins }), CONFIG_PATH);
  const gateway = await Gateway.start({ loaded, logger: logs.logger, clock: new ManualClock(0) });
  onTestFinished(() => gateway.stop());
  return { port: gateway.http!.port, logs };
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('admin API', () => {
  it('is off unless admin_token is set', async () => {
    const { port } = await start({});
    const res = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=alice', headers: auth });
    expect(res.status).toBe(404);
  });

  it('refuses a missing or wrong token with 401 and never logs it', async () => {
    const { port, logs } = await start({ admin_token: TOKEN });
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: TOKEN }];
    for (const headers of attempts) {
      const res = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=alice', headers });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
    expect(logs.records().filter((r) => r.event === 'inspect')).toHaveLength(0);
    const everything = JSON.stringify(logs.records());
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('wrong-token');
  });

  it('inspects with the right token, passing channel and tenant, and answers without repeating the id', async () => {
    const { port, logs } = await start({ admin_token: TOKEN });
    const res = await httpRequest(port, {
      method: 'GET',
      path: '/v1/admin/limits?user_id=alice-secret&tenant_id=acme&channel=telegram',
      headers: auth,
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ rules: [{ rule: 'user', limit: 3, remaining: 2 }] });
    expect(logs.records().filter((r) => r.event === 'inspect')).toMatchObject([{ channel: 'telegram', has_tenant: true }]);
    expect(JSON.stringify(logs.records())).not.toContain('alice-secret');
  });

  it('resets with a JSON body, and names missing fields', async () => {
    const { port, logs } = await start({ admin_token: TOKEN });
    const bad = await httpRequest(port, { method: 'POST', path: '/v1/admin/limits/reset', headers: auth, body: '{}' });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ message: 'user_id: required' });
    const ok = await httpRequest(port, {
      method: 'POST',
      path: '/v1/admin/limits/reset',
      headers: auth,
      body: JSON.stringify({ user_id: 'alice' }),
    });
    expect(ok.status).toBe(200);
    expect(logs.records().filter((r) => r.event === 'reset')).toHaveLength(1);
  });

  it('answers 404 for an admin route no plugin serves', async () => {
    const { port } = await start({ admin_token: TOKEN }, []);
    const res = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=a', headers: auth });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
  });

  it('refuses a short admin_token at startup, naming the field', () => {
    expect(() => parseConfig(JSON.stringify({ channels: { http: { admin_token: 'short' } } }), CONFIG_PATH)).toThrow(
      'channels.http.admin_token: must be at least 16 characters',
    );
  });
});
