import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redisTestsEnabled } from '../support/redis.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../..');

/**
 * The benchmark is not part of the test suite; this only checks that it still runs: `npm run bench --
 * --smoke` (every section, at a few seconds each, with its own redis-server and gateways) must exit 0
 * and write valid JSON with every section's figures. The numbers themselves are not checked.
 */
describe.skipIf(!redisTestsEnabled())('npm run bench -- --smoke', () => {
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-bench-smoke-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every section and writes the results as JSON', async () => {
    const out = join(dir, 'results.json');
    const stderr: string[] = [];
    const code = await new Promise<number | null>((resolveExit, reject) => {
      const child = spawn('npm', ['run', '--silent', 'bench', '--', '--smoke', '--out', out], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
      child.once('error', reject);
      child.once('exit', resolveExit);
    });
    expect(code, stderr.join('').slice(-3000)).toBe(0);

    const results = JSON.parse(readFileSync(out, 'utf8')) as Record<string, any>;
    expect(results.profile).toBe('smoke');
    expect(Number.isNaN(Date.parse(results.timestamp))).toBe(false);
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);

    const { inProcess, redis, hookPath, endToEnd, memory, accuracy, flood } = results.sections;
    expect(inProcess.map((r: any) => r.algorithm)).toEqual(['sliding_window', 'fixed_window', 'token_bucket']);
    for (const r of inProcess) {
      expect(r.byRules.map((x: any) => x.rules)).toEqual([1, 3]);
      for (const x of r.byRules) for (const c of ['floor', 'rlf', 'store', 'limiter']) expect(x[c].median).toBeGreaterThan(0);
    }
    expect(redis.byConcurrency.map((c: any) => c.concurrency)).toEqual([1, 64, 256]);
    for (const c of redis.byConcurrency) {
      expect(c.contenders.map((x: any) => x.name)).toEqual(['batchedFloor', 'unbatchedFloor', 'rlf', 'sliding_window', 'fixed_window', 'token_bucket']);
      for (const x of c.contenders) {
        expect(x.rate.median).toBeGreaterThan(0);
        expect(x.vsBatchedFloor).toBeGreaterThan(0);
        expect(x.vsUnbatchedFloor).toBeGreaterThan(0);
      }
    }
    expect(redis.byConcurrency[1].contenders[0].latency.p99Ms).toBeGreaterThan(0);
    expect(hookPath.limiter.median).toBeGreaterThan(0);
    expect(hookPath.noPlugin.median).toBeGreaterThan(0);
    expect(endToEnd.enabled.requestsPerSecond).toBeGreaterThan(0);
    expect(endToEnd.disabled.requestsPerSecond).toBeGreaterThan(0);
    expect(endToEnd.noHeaders.requestsPerSecond).toBeGreaterThan(0);
    // Floodgate and its two peers, each with and without its limiter, with requests/s and CPU per request.
    expect(endToEnd.servers.map((s: any) => s.name)).toEqual(['floodgate', 'fastify', 'express']);
    for (const s of endToEnd.servers) {
      for (const side of [s.withLimiter, s.withoutLimiter]) {
        expect(side.requestsPerSecond).toBeGreaterThan(0);
        // Read from /proc/<pid>/stat: null (NaN) where there is none.
        if (process.platform === 'linux') expect(side.cpuUsPerRequest).toBeGreaterThan(0);
      }
      expect(Number.isFinite(s.cost)).toBe(true);
      expect(Number.isFinite(s.limiterCpuUsPerRequest)).toBe(true);
    }
    expect(memory.figures.map((f: any) => f.name)).toEqual([
      'sliding_window',
      'fixed_window',
      'token_bucket',
      'sliding_window (full ring)',
      'RateLimiterMemory',
    ]);
    for (const f of memory.figures) expect(f.bytesPerKey).toBeGreaterThan(0);
    const sliding = accuracy.figures.find((f: any) => f.algorithm === 'sliding_window');
    // The one figure that is a correctness guarantee, not a speed: never more than N in any window.
    expect(sliding.maxInWindow).toBeLessThanOrEqual(sliding.limit);
    // The flood: the subject is refused throughout, through both sets of gateways.
    expect(flood.rows.map((r: any) => r.subject)).toEqual(['one user', 'one address']);
    for (const row of flood.rows) {
      for (const side of [row.cache, row.noCache]) {
        expect(side.refusedPerSecond.median).toBeGreaterThan(0);
        expect(side.admitted).toBe(0);
      }
      expect(row.noCache.evalshaPerRefused).toBeGreaterThan(0);
    }
    expect(results.targets.length).toBeGreaterThan(10);
  }, 240_000);
});
