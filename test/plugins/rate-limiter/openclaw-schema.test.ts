import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { manifestText, MANIFEST } from '../../../plugins/rate-limiter/openclaw/generate-schema.ts';
import { HostOptions, parseOpenClawOptions } from '../../../plugins/rate-limiter/openclaw/options.ts';
import { openClawConfigSchema } from '../../../plugins/rate-limiter/openclaw/schema.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { parseRate } from '../../../plugins/rate-limiter/rate.ts';

/**
 * openclaw.plugin.json's configSchema is generated from the zod schemas that parse the config
 * (npm run openclaw:schema); these tests fail when the committed one and the schemas disagree.
 */

const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8')) as { id: string; configSchema: Record<string, unknown> };
const validate = new Ajv2020({ strict: false, allErrors: true }).compile(manifest.configSchema);

describe("the OpenClaw manifest's configSchema", () => {
  it('is what the generator writes from the zod schemas now (run `npm run openclaw:schema` after changing an option)', () => {
    expect(readFileSync(MANIFEST, 'utf8')).toBe(manifestText(manifest));
    expect(manifest.configSchema).toEqual(openClawConfigSchema());
  });

  it("names every option of Floodgate's config and the host settings, and nothing else", () => {
    const properties = Object.keys(manifest.configSchema.properties as object).sort();
    expect(properties).toEqual([...Object.keys(RateLimiterOptions.shape), ...Object.keys(HostOptions.shape)].sort());
    expect(manifest.configSchema.additionalProperties).toBe(false);
  });

  const accepted: Record<string, unknown>[] = [
    { by_user: '30/m' },
    { by_user: ['30/m', '500/h', '2000/d'], by_tenant: { rate: '300/m', tokens: '100000/h' } },
    { by_user: { rate: '20/m', shadow: true }, by_tool: { exec: '2/m', web_search: { rate: ['10/m', '100/h'] } } },
    { by_user: '10/s', backend: 'redis', redis_url: 'redis://127.0.0.1:6379', on_backend_error: 'closed', redis_timeout_ms: 100 },
    { by_user: '100/15m', algorithm: 'token_bucket', reply_cooldown: 30, message: 'Slow down: {retry_after}.', exempt_users: ['default:42'] },
    { by_user: '5/M', mode: 'permissive', on_error: 'fail_closed', timeout_ms: 500, headers: 'none' },
    { by_user: '30/m', block: { after: 2, durations: ['1m', '10m', '1h'], decay_after: '12h', message: 'Paused for {duration}.' } },
  ];
  it.each(accepted)('accepts what the options accept: %j', (config) => {
    expect(() => parseOpenClawOptions(config)).not.toThrow();
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  const rejected: Record<string, unknown>[] = [
    { by_usr: '30/m' },
    { by_user: '30 per minute' },
    { by_user: { rate: '30/m', burst: 5 } },
    { by_user: [] },
    { by_tool: { exec: { rate: '1/m', tokens: '100/m' } } },
    { by_user: '30/m', algorithm: 'leaky' },
    { by_user: '30/m', on_error: 'ignore' },
    { by_user: '30/m', timeout_ms: 20_000 },
    { by_user: '30/m', redis_key_prefix: 'has space' },
    { by_user: '30/m', block: { durations: ['1m'], aftr: 2 } },
    { by_user: '30/m', block: { after: 2 } },
  ];
  it.each(rejected)('rejects what the options reject: %j', (config) => {
    expect(() => parseOpenClawOptions(config)).toThrow();
    expect(validate(config)).toBe(false);
  });

  it("matches rates as parseRate does (parseRate then judges units and ranges)", () => {
    const pattern = new RegExp(((manifest.configSchema.properties as Record<string, { anyOf: { pattern?: string }[] }>).by_user!.anyOf[0]!.pattern)!, 'u');
    for (const text of ['30/m', ' 10 / s ', '100/15m', '2000/d', '5/Hours', '1/sec', '1000/calendar_day', '5000000/Calendar_Month']) {
      expect(pattern.test(text)).toBe(true);
      expect(() => parseRate(text)).not.toThrow();
    }
    for (const text of ['30', '/m', '30/', '30 per m', '3.5/m', '-1/m']) {
      expect(pattern.test(text)).toBe(false);
      expect(() => parseRate(text)).toThrow();
    }
  });
});

describe('the OpenClaw plugin package', () => {
  const root = dirname(MANIFEST);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { openclaw: { extensions: string[] }; dependencies: Record<string, string> };

  it('points OpenClaw at an entry that exists and declares the id the manifest has', () => {
    expect(pkg.openclaw.extensions).toEqual(['./openclaw/index.ts']);
    const entry = resolve(root, pkg.openclaw.extensions[0]!);
    expect(existsSync(entry)).toBe(true);
    expect(readFileSync(entry, 'utf8')).toContain(`id: '${manifest.id}'`);
  });

  it("declares the runtime packages it takes from the clone's node_modules, as the root does", () => {
    const rootPkg = JSON.parse(readFileSync(resolve(root, '../../package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const [name, range] of Object.entries(pkg.dependencies)) expect(rootPkg.dependencies[name]).toBe(range);
  });
});
