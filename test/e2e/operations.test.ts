import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  gatewayConfig,
  rateLimiterEntry,
  sendMessage,
  spawnGateway,
  startGateway,
  writeConfig,
  type RunningGateway,
} from './support/gateway-process.ts';

let gateway: RunningGateway | undefined;
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
});

const THROWING_PLUGIN = join(REPO_ROOT, 'test/e2e/fixtures/throwing-plugin/index.ts');

describe('operating the gateway', () => {
  it('in permissive mode lets a flood through and logs the violation once, not once per request', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '2/m' }, { mode: 'permissive' })]));
    for (let i = 0; i < 10; i++) {
      const result = await sendMessage(gateway.url, { user_id: 'flooder', text: 'hi' });
      expect(result.status).toBe(200);
    }
    const violations = gateway.logs().filter((l) => String(l.msg).startsWith('rate limit exceeded'));
    expect(violations).toHaveLength(1);
    expect(violations[0]!.msg).toContain('permissive');
    expect(violations[0]!.level).toBe(40);
    expect(violations[0]!.subject).toMatch(/^[0-9a-f]{16}$/);
  });

  it('lets messages through when a plugin throws (fail_open), and logs the failure', async () => {
    gateway = await startGateway(
      gatewayConfig([
        { name: 'always_throws', path: THROWING_PLUGIN, priority: 1, on_error: 'fail_open', config: {} },
        rateLimiterEntry({ by_user: '10/m' }),
      ]),
    );
    const result = await sendMessage(gateway.url, { user_id: 'u', text: 'hi' });
    expect(result.status).toBe(200);
    // The rate limiter after it still ran.
    expect(result.headers.get('x-ratelimit-remaining')).toBe('9');
    const failures = gateway.logs().filter((l) => l.msg === 'plugin failed; message let through (fail_open)');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.plugin).toBe('always_throws');
    expect(failures[0]!.err_message).toContain('deliberate failure');
  });

  it('refuses messages with 503 when a fail_closed plugin throws', async () => {
    gateway = await startGateway(
      gatewayConfig([{ name: 'always_throws', path: THROWING_PLUGIN, on_error: 'fail_closed', config: {} }]),
    );
    const result = await sendMessage(gateway.url, { user_id: 'u', text: 'hi' });
    expect(result.status).toBe(503);
    expect(result.body.error).toBe('plugin_unavailable');
  });

  it('refuses to start on a bad plugin config, naming every bad field', async () => {
    const path = writeConfig(
      gatewayConfig([rateLimiterEntry({ by_user: 'abc/m', by_tool: { search: '60/x' }, backend: 'reddis', bakend: 1 })]),
    );
    const { stderr, exited } = spawnGateway(path);
    expect(await exited).toBe(78);
    const text = stderr.join('\n');
    expect(text).toContain(path);
    expect(text).toContain('FG_ERR_PLUGIN_CONFIG');
    expect(text).toContain('plugins[0] (rate_limiter).config.by_user: "abc/m" is not a rate');
    expect(text).toContain('plugins[0] (rate_limiter).config.by_tool.search: "60/x" has unknown unit');
    expect(text).toContain('plugins[0] (rate_limiter).config.backend: string "reddis" is not allowed; expected one of "memory", "redis"');
    expect(text).toContain('plugins[0] (rate_limiter).config.bakend: unknown field (did you mean "backend"?)');
  });

  it('refuses to start on a bad gateway config, naming the field', async () => {
    const path = writeConfig({ channels: { http: { port: 'eighty' } }, plugins: [] });
    const { stderr, exited } = spawnGateway(path);
    expect(await exited).toBe(78);
    expect(stderr.join('\n')).toContain('channels.http.port: expected number, got string "eighty"');
  });

  it('stops gracefully on SIGTERM, tearing plugins down', async () => {
    gateway = await startGateway(gatewayConfig([rateLimiterEntry({ by_user: '10/m' })]));
    expect((await sendMessage(gateway.url, { user_id: 'u', text: 'hi' })).status).toBe(200);
    expect(await gateway.stop()).toBe(0);
    expect(gateway.logs().some((l) => l.msg === 'gateway stopped')).toBe(true);
  });

  it('starts with `npm start -- --config <file>` as the README says', async () => {
    const path = writeConfig(gatewayConfig([rateLimiterEntry({ by_user: '10/m' })]));
    const child = spawn('npm', ['start', '--', '--config', path], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const port = await new Promise<number>((resolvePort, reject) => {
        const timer = setInterval(() => {
          const match = /"port":(\d+),"msg":"http channel listening"/.exec(output);
          if (match) {
            clearInterval(timer);
            resolvePort(Number(match[1]));
          }
        }, 20);
        child.once('exit', (code) => reject(new Error(`npm start exited with ${code}: ${output}`)));
      });
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      // npm runs the gateway in a child of its own: signal the whole group.
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
