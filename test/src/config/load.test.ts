import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../../src/config/load.ts';
import { ErrorCode, FloodgateError } from '../../../src/errors.ts';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'floodgate-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(content: unknown, name = 'config.json'): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Runs `fn`, which must throw a FloodgateError, and returns that error. */
function configError(fn: () => unknown): FloodgateError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FloodgateError);
    return error as FloodgateError;
  }
  throw new Error('expected a configuration error, but the config was accepted');
}

describe('loadConfig: reading the file', () => {
  it('names the missing file in the error', () => {
    const missing = join(dir, 'nope.json');
    const error = configError(() => loadConfig(missing, {}));
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.message).toContain(missing);
    expect(error.message).toContain('cannot read config file');
  });

  it('rejects a file that is not JSON and names the file', () => {
    const file = writeConfig('{ "channels": { ');
    const error = configError(() => loadConfig(file, {}));
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.message).toContain(file);
    expect(error.message).toContain('not valid JSON');
  });

  it.each([['[]'], ['"text"'], ['42'], ['null']])('rejects %s at the top level', (text) => {
    const file = writeConfig(text);
    const error = configError(() => loadConfig(file, {}));
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.message).toBe(`${file}: expected a JSON object at the top level`);
  });

  it('returns the absolute path and folder of the file it read', () => {
    const file = writeConfig({});
    const loaded = loadConfig(file, {});
    expect(loaded.path).toBe(file);
    expect(loaded.dir).toBe(dir);
  });
});

describe('loadConfig: defaults', () => {
  it('fills every default into an empty object', () => {
    const { config } = loadConfig(writeConfig({}), {});
    expect(config).toEqual({
      log: { level: 'info' },
      channels: {
        http: {
          enabled: true,
          host: '127.0.0.1',
          port: 8787,
          max_body_bytes: 65536,
          reply_timeout_ms: 30000,
          trusted_proxies: [],
          forwarded_header: 'x-forwarded-for',
        },
        cli: { enabled: false, user_id: 'local', status_line: true },
        telegram: { enabled: false, path: '/telegram/webhook' },
        discord: { enabled: false, path: '/discord/interactions' },
      },
      hooks: { timeout_ms: 1000 },
      plugins: [],
      agent: { kind: 'demo' },
    });
  });

  it('keeps the defaults of fields a partial section leaves out', () => {
    const { config } = loadConfig(writeConfig({ channels: { http: { port: 9000 } }, log: { level: 'debug' } }), {});
    expect(config.channels.http).toEqual({
      enabled: true,
      host: '127.0.0.1',
      port: 9000,
      max_body_bytes: 65536,
      reply_timeout_ms: 30000,
      trusted_proxies: [],
      forwarded_header: 'x-forwarded-for',
    });
    expect(config.channels.cli).toEqual({ enabled: false, user_id: 'local', status_line: true });
    expect(config.log.level).toBe('debug');
  });

  it('fills in plugin entry defaults', () => {
    const { config } = loadConfig(writeConfig({ plugins: [{ name: 'p', path: './p.ts' }] }), {});
    expect(config.plugins).toEqual([
      { name: 'p', path: './p.ts', enabled: true, mode: 'enforce', priority: 100, on_error: 'fail_open', config: {} },
    ]);
  });

  it('accepts port 0 (any free port) and the boundary port 65535', () => {
    expect(loadConfig(writeConfig({ channels: { http: { port: 0 } } }), {}).config.channels.http.port).toBe(0);
    expect(loadConfig(writeConfig({ channels: { http: { port: 65535 } } }), {}).config.channels.http.port).toBe(65535);
  });
});

describe('loadConfig: validation messages', () => {
  it('reports an unknown top-level field with a did-you-mean hint', () => {
    const error = configError(() => loadConfig(writeConfig({ chanels: {} }), {}));
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.problems).toEqual(['chanels: unknown field (did you mean "channels"?)']);
  });

  it('reports a misspelt nested field with its full path and a hint', () => {
    const error = configError(() => loadConfig(writeConfig({ channels: { http: { prot: 80 } } }), {}));
    expect(error.problems).toEqual(['channels.http.prot: unknown field (did you mean "port"?)']);
  });

  it('suggests fields inside plugin entries', () => {
    const error = configError(() =>
      loadConfig(writeConfig({ plugins: [{ name: 'p', path: './p.ts', priorty: 1 }] }), {}),
    );
    expect(error.problems).toEqual(['plugins[0].priorty: unknown field (did you mean "priority"?)']);
  });

  it('gives no hint when no field is close', () => {
    const error = configError(() => loadConfig(writeConfig({ zzzzzzzz: 1 }), {}));
    expect(error.problems).toEqual(['zzzzzzzz: unknown field']);
  });

  it('names the field path of a wrong type', () => {
    const error = configError(() => loadConfig(writeConfig({ channels: { http: { port: '80' } } }), {}));
    expect(error.problems).toEqual(['channels.http.port: expected number, got string "80"']);
  });

  it('says "a whole number" for a fractional integer field', () => {
    const error = configError(() =>
      loadConfig(writeConfig({ plugins: [{ name: 'p', path: './p.ts', priority: 1.5 }] }), {}),
    );
    expect(error.problems).toEqual(['plugins[0].priority: expected a whole number, got number 1.5']);
  });

  it('names a missing required field', () => {
    const error = configError(() => loadConfig(writeConfig({ plugins: [{ path: './p.ts' }] }), {}));
    expect(error.problems).toEqual(['plugins[0].name: required field is missing (expected string)']);
  });

  it('lists the allowed values of an enum', () => {
    const error = configError(() =>
      loadConfig(writeConfig({ plugins: [{ name: 'p', path: './p.ts', on_error: 'ignore' }] }), {}),
    );
    expect(error.problems).toEqual([
      'plugins[0].on_error: string "ignore" is not allowed; expected one of "fail_open", "fail_closed"',
    ]);
  });

  it('names each trusted proxy that is no address or range, and a forwarded header it does not know', () => {
    const error = configError(() =>
      loadConfig(
        writeConfig({ channels: { http: { trusted_proxies: ['10.0.0.0/8', '10.0.0.0/33', 'proxy.internal'], forwarded_header: 'x-real-ip' } } }),
        {},
      ),
    );
    expect(error.problems).toEqual([
      'channels.http.trusted_proxies[1]: "10.0.0.0/33": the prefix length must be a whole number from 0 to 32',
      'channels.http.trusted_proxies[2]: "proxy.internal" is not an IP address or CIDR range (e.g. "10.0.0.0/8", "2001:db8::/32")',
      'channels.http.forwarded_header: string "x-real-ip" is not allowed; expected one of "x-forwarded-for", "forwarded"',
    ]);
  });

  it('rejects ports out of range, naming the field', () => {
    const error = configError(() => loadConfig(writeConfig({ channels: { http: { port: 65536 } } }), {}));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^channels\.http\.port: /);
  });

  it('lists several problems in one error, each on its own line, under a headline naming the file', () => {
    const file = writeConfig({
      logg: {},
      channels: { http: { port: 'eighty', max_body_bytes: 0 } },
      hooks: { timeout_ms: 'soon' },
      plugins: [{ name: '', path: './p.ts', mode: 'loud' }],
    });
    const error = configError(() => loadConfig(file, {}));
    expect(error.code).toBe(ErrorCode.Config);
    const fields = error.problems.map((p) => p.split(':')[0]).sort();
    expect(fields).toEqual(
      [
        'channels.http.max_body_bytes',
        'channels.http.port',
        'hooks.timeout_ms',
        'logg',
        'plugins[0].mode',
        'plugins[0].name',
      ].sort(),
    );
    const lines = error.message.split('\n');
    expect(lines[0]).toBe(`${file}: invalid configuration`);
    expect(lines.slice(1).sort()).toEqual(error.problems.map((p) => `  - ${p}`).sort());
  });
});

describe('loadConfig: environment overrides', () => {
  it('FLOODGATE_HTTP_PORT overrides the port in the file', () => {
    const file = writeConfig({ channels: { http: { port: 8000, host: '0.0.0.0' } } });
    const { config } = loadConfig(file, { FLOODGATE_HTTP_PORT: '9191' });
    expect(config.channels.http.port).toBe(9191);
    expect(config.channels.http.host).toBe('0.0.0.0');
  });

  it('FLOODGATE_HTTP_PORT applies when the file has no channels section', () => {
    expect(loadConfig(writeConfig({}), { FLOODGATE_HTTP_PORT: '0' }).config.channels.http.port).toBe(0);
  });

  it('an empty FLOODGATE_HTTP_PORT is ignored', () => {
    const file = writeConfig({ channels: { http: { port: 8000 } } });
    expect(loadConfig(file, { FLOODGATE_HTTP_PORT: '' }).config.channels.http.port).toBe(8000);
  });

  it.each([['abc'], ['70000'], ['-1'], ['80.5'], [' '], ['0x50'], ['1e3']])(
    'rejects FLOODGATE_HTTP_PORT=%j, quoting the value',
    (value) => {
      const error = configError(() => loadConfig(writeConfig({}), { FLOODGATE_HTTP_PORT: value }));
      expect(error.code).toBe(ErrorCode.Config);
      expect(error.problems).toEqual([
        `FLOODGATE_HTTP_PORT: expected a port number 0-65535, got ${JSON.stringify(value)}`,
      ]);
    },
  );

  it('lists a bad FLOODGATE_HTTP_PORT together with the problems in the file', () => {
    const error = configError(() => loadConfig(writeConfig({ hooks: { timeot_ms: 5 } }), { FLOODGATE_HTTP_PORT: 'x' }));
    expect(error.problems).toEqual([
      'FLOODGATE_HTTP_PORT: expected a port number 0-65535, got "x"',
      'hooks.timeot_ms: unknown field (did you mean "timeout_ms"?)',
    ]);
  });

  it('an override does not hide a malformed channels section', () => {
    const error = configError(() => loadConfig(writeConfig({ channels: 'http' }), { FLOODGATE_HTTP_PORT: '9000' }));
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.problems).toEqual(['channels: expected object, got string "http"']);
  });

  it('an override does not hide a null http section', () => {
    const error = configError(() =>
      loadConfig(writeConfig({ channels: { http: null } }), { FLOODGATE_HTTP_PORT: '9000' }),
    );
    expect(error.problems).toEqual(['channels.http: expected object, got null']);
  });

  it('FLOODGATE_LOG_LEVEL overrides the level and is validated like the file', () => {
    const file = writeConfig({ log: { level: 'warn' } });
    expect(loadConfig(file, { FLOODGATE_LOG_LEVEL: 'debug' }).config.log.level).toBe('debug');
    const error = configError(() => loadConfig(file, { FLOODGATE_LOG_LEVEL: 'loud' }));
    expect(error.problems[0]).toMatch(/^log\.level: string "loud" is not allowed/);
  });

  it('an override does not crash on a malformed log section', () => {
    const error = configError(() => loadConfig(writeConfig({ log: 3 }), { FLOODGATE_LOG_LEVEL: 'debug' }));
    expect(error.problems).toEqual(['log: expected object, got number 3']);
  });
});

describe('parseConfig', () => {
  it('validates text without touching the file system, naming the given path', () => {
    const error = configError(() => parseConfig('{"hooks":{"timeout_ms":0}}', '/etc/floodgate/config.json'));
    expect(error.message.split('\n')[0]).toBe('/etc/floodgate/config.json: invalid configuration');
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^hooks\.timeout_ms: /);
  });

  it('returns the folder of the given path for resolving plugin paths', () => {
    expect(parseConfig('{}', '/etc/floodgate/config.json').dir).toBe('/etc/floodgate');
  });
});

describe('loadConfig: chat platform channels', () => {
  const SECRET = 'Abc_123-xyz';
  const KEY = 'a3'.repeat(32);

  it('accepts Telegram and Discord with their secrets, filling in the default paths', () => {
    const { config } = loadConfig(
      writeConfig({ channels: { telegram: { enabled: true, secret_token: SECRET }, discord: { enabled: true, public_key: KEY } } }),
      {},
    );
    expect(config.channels.telegram).toEqual({ enabled: true, path: '/telegram/webhook', secret_token: SECRET });
    expect(config.channels.discord).toEqual({ enabled: true, path: '/discord/interactions', public_key: KEY });
  });

  it('needs the HTTP channel for either webhook, naming the field', () => {
    const error = configError(() =>
      loadConfig(
        writeConfig({
          channels: {
            http: { enabled: false },
            telegram: { enabled: true, secret_token: SECRET },
            discord: { enabled: true, public_key: KEY },
          },
        }),
        {},
      ),
    );
    expect(error.code).toBe(ErrorCode.Config);
    expect(error.problems).toEqual([
      'channels.telegram.enabled: needs channels.http.enabled to be true: the webhook is served by the HTTP channel',
      'channels.discord.enabled: needs channels.http.enabled to be true: the webhook is served by the HTTP channel',
    ]);
  });

  it('requires the secret of each enabled platform, and nothing of a disabled one', () => {
    const error = configError(() =>
      loadConfig(writeConfig({ channels: { telegram: { enabled: true }, discord: { enabled: true } } }), {}),
    );
    expect(error.problems).toEqual([
      'channels.telegram.secret_token: required when channels.telegram.enabled is true',
      'channels.discord.public_key: required when channels.discord.enabled is true',
    ]);
    expect(loadConfig(writeConfig({ channels: { telegram: { enabled: false } } }), {}).config.channels.telegram.enabled).toBe(false);
  });

  it.each([[''], ['has space'], ['dots.are.out'], ['x'.repeat(257)], ['ünïcode']])(
    'refuses the Telegram secret_token %j by Telegram’s rule, without quoting it',
    (secret) => {
      const error = configError(() => loadConfig(writeConfig({ channels: { telegram: { enabled: true, secret_token: secret } } }), {}));
      expect(error.problems).toEqual([
        'channels.telegram.secret_token: must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram\'s rule)',
      ]);
    },
  );

  it('accepts a 256-character secret_token', () => {
    const secret = 'aZ0_-'.repeat(51) + 'q';
    expect(secret).toHaveLength(256);
    const { config } = loadConfig(writeConfig({ channels: { telegram: { enabled: true, secret_token: secret } } }), {});
    expect(config.channels.telegram.secret_token).toBe(secret);
  });

  it.each([['a3'.repeat(31)], ['a3'.repeat(33)], ['g'.repeat(64)], [`0x${'a'.repeat(62)}`]])('refuses the Discord public_key %j', (key) => {
    const error = configError(() => loadConfig(writeConfig({ channels: { discord: { enabled: true, public_key: key } } }), {}));
    expect(error.problems).toEqual([
      'channels.discord.public_key: must be the 64 hexadecimal characters of the application\'s public key',
    ]);
  });

  it('refuses webhook paths that are relative, carry a query, or collide', () => {
    const error = configError(() =>
      loadConfig(
        writeConfig({
          channels: {
            telegram: { enabled: true, secret_token: SECRET, path: 'telegram' },
            discord: { enabled: true, public_key: KEY, path: '/d?x=1' },
          },
        }),
        {},
      ),
    );
    expect(error.problems).toEqual([
      'channels.telegram.path: must start with "/" and contain no spaces, "?" or "#"',
      'channels.discord.path: must start with "/" and contain no spaces, "?" or "#"',
    ]);
  });

  it.each<[Record<string, unknown>, Record<string, unknown>, string]>([
    [{ path: '/v1/messages' }, {}, 'channels.telegram.path: "/v1/messages" is already taken by the HTTP channel'],
    [{}, { path: '/healthz' }, 'channels.discord.path: "/healthz" is already taken by the HTTP channel'],
    [{ path: '/metrics' }, {}, 'channels.telegram.path: "/metrics" is already taken by the HTTP channel'],
    [{ path: '/hooks' }, { path: '/hooks' }, 'channels.discord.path: "/hooks" is already taken by channels.telegram.path'],
  ])('refuses colliding paths (telegram %j, discord %j)', (telegram, discord, problem) => {
    const error = configError(() =>
      loadConfig(
        writeConfig({
          channels: {
            telegram: { enabled: true, secret_token: SECRET, ...telegram },
            discord: { enabled: true, public_key: KEY, ...discord },
          },
        }),
        {},
      ),
    );
    expect(error.problems).toEqual([problem]);
  });

  it('suggests the right field for a misspelt one', () => {
    const error = configError(() => loadConfig(writeConfig({ channels: { telegram: { secret_tokn: SECRET } } }), {}));
    expect(error.problems).toEqual(['channels.telegram.secret_tokn: unknown field (did you mean "secret_token"?)']);
  });
});
