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

describe('admin sign-in for browsers', () => {
  const form = (fields: Record<string, string>) => ({
    method: 'POST',
    path: '/v1/admin/session',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

  it('sends a browser asking for a page to the login form, and a script gets 401', async () => {
    const { port } = await start({ admin_token: TOKEN });
    const browser = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=a', headers: { accept: 'text/html' } });
    expect(browser.status).toBe(303);
    expect(browser.headers.location).toBe('/v1/admin/login?next=%2Fv1%2Fadmin%2Flimits');
    const script = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=a' });
    expect(script.status).toBe(401);
  });

  it('opens a session for the right token only, and a session ends at sign-out', async () => {
    const { port, logs } = await start({ admin_token: TOKEN });
    const wrong = await httpRequest(port, form({ token: 'guess-guess-guess', next: '/v1/admin/limits' }));
    expect(wrong.status).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    expect(wrong.text).toContain('That is not the admin token.');

    const right = await httpRequest(port, form({ token: TOKEN, next: '/v1/admin/limits?user_id=alice' }));
    expect(right.status).toBe(303);
    expect(right.headers.location).toBe('/v1/admin/limits?user_id=alice');
    const cookie = String(right.headers['set-cookie']);
    expect(cookie).toMatch(/^fg_admin=[\w-]{43}; Path=\/v1\/admin\/; HttpOnly; Secure; SameSite=Strict; Max-Age=28800$/);
    const session = cookie.split(';')[0]!;
    expect(session).not.toContain(TOKEN);

    const inspected = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=alice', headers: { cookie: `theme=dark; ${session}` } });
    expect(inspected.status).toBe(200);

    const out = await httpRequest(port, { method: 'POST', path: '/v1/admin/logout', headers: { cookie: session } });
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    const after = await httpRequest(port, { method: 'GET', path: '/v1/admin/limits?user_id=alice', headers: { cookie: session } });
    expect(after.status).toBe(401);
    expect(JSON.stringify(logs.records())).not.toContain(TOKEN);
  });

  it('sends a signed-in browser only to admin pages (no open redirect)', async () => {
    const { port } = await start({ admin_token: TOKEN });
    for (const next of ['https://evil.example/', '//evil.example/', '/v1/admin//evil.example', '/elsewhere']) {
      const res = await httpRequest(port, form({ token: TOKEN, next }));
      expect(res.headers.location, next).toBe('/v1/admin/status');
    }
  });
});
