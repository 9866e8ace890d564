/** Turns the sections' figures into the printed tables and the target checks. */
import type { AccuracyResult } from '../sections/accuracy.ts';
import type { EndToEndResult } from '../sections/end-to-end.ts';
import type { FloodResult } from '../sections/flood.ts';
import type { HookPathResult } from '../sections/hook-path.ts';
import type { InProcessResult } from '../sections/in-process.ts';
import type { MemoryResult } from '../sections/memory.ts';
import type { RedisResult } from '../sections/redis.ts';
import { bytes, ms, percent, rate, ratio, table, us } from './format.ts';
import type { MachineInfo } from './machine.ts';

export interface Sections {
  inProcess?: InProcessResult[];
  redis?: RedisResult;
  hookPath?: HookPathResult;
  endToEnd?: EndToEndResult;
  memory?: MemoryResult;
  accuracy?: AccuracyResult;
  flood?: FloodResult;
}

export interface Target {
  section: string;
  target: string;
  required: string;
  measured: string;
  met: boolean;
}

const RLF = 'RateLimiterMemory';

export function inProcessTable(results: InProcessResult[]): string {
  const rows = results.flatMap((r) =>
    r.byRules.map((x) => [
      r.algorithm,
      String(x.rules),
      rate(x.floor.median),
      rate(x.rlf.median),
      rate(x.store.median),
      ratio(x.storeVsRlf),
      percent(x.storeVsFloor),
      rate(x.limiter.median),
      ratio(x.limiterVsRlf),
    ]),
  );
  return table(['Algorithm', 'Rules', 'Bare Map floor', RLF, 'Floodgate store', 'store / RLF', 'store / floor', 'Full limiter path', 'full path / RLF'], rows);
}

export function redisTable(result: RedisResult): string {
  const names = result.byConcurrency[0]?.contenders.map((c) => c.name) ?? [];
  const label: Record<string, string> = {
    batchedFloor: 'Floor: Lua INCR+PEXPIRE, one call per tick',
    unbatchedFloor: 'Unbatched floor: one call per request',
    rlf: 'RateLimiterRedis',
  };
  const last = result.byConcurrency[result.byConcurrency.length - 1];
  const withLatency = result.byConcurrency.find((c) => c.contenders.some((x) => x.latency));
  const columns = [
    'Contender',
    ...result.byConcurrency.map((c) => `c=${c.concurrency}`),
    `/ RLF (c=${last?.concurrency})`,
    `/ floor (c=${last?.concurrency})`,
    `/ unbatched floor (c=${last?.concurrency})`,
    ...(withLatency ? [`p50 (c=${withLatency.concurrency})`, `p99 (c=${withLatency.concurrency})`] : []),
  ];
  const rows = names.map((name) => {
    const at = (c: RedisResult['byConcurrency'][number]) => c.contenders.find((x) => x.name === name)!;
    const lat = withLatency ? at(withLatency).latency : undefined;
    return [
      label[name] ?? `Floodgate ${name}`,
      ...result.byConcurrency.map((c) => rate(at(c).rate.median) + (at(c).errors ? ` (${at(c).errors} err)` : '')),
      ratio(at(last!).vsRlf),
      percent(at(last!).vsBatchedFloor),
      percent(at(last!).vsUnbatchedFloor),
      ...(withLatency ? [ms(lat?.p50Ms ?? NaN), ms(lat?.p99Ms ?? NaN)] : []),
    ];
  });
  return table(columns, rows);
}

export function hookPathTable(result: HookPathResult): string {
  return table(
    ['Host', 'messages/s', 'vs no plugin'],
    [
      ['no plugin', rate(result.noPlugin.median), '100%'],
      ['rate limiter (memory)', rate(result.limiter.median), percent(result.limiterVsNoPlugin)],
    ],
  );
}

export function endToEndTable(result: EndToEndResult): string {
  const row = (name: string, side: EndToEndResult['enabled']) => [
    name,
    rate(side.requestsPerSecond, ' req/s'),
    ms(side.p50Ms),
    ms(side.p99Ms),
    us(side.cpuUsPerRequest),
    String(side.non2xx + side.errors),
  ];
  return table(
    ['Gateway', 'requests/s', 'p50', 'p99', 'CPU/request', 'non-2xx/errors'],
    [row('limiter disabled', result.disabled), row('limiter enabled', result.enabled), row('limiter enabled, headers "none"', result.noHeaders)],
  );
}

/** Floodgate, fastify and express on the same load, each with and without its limiter. */
export function endToEndServersTable(result: EndToEndResult): string {
  return table(
    ['Server', 'Limiter', 'without limiter', 'with limiter', 'limiter costs', 'CPU/request without', 'CPU/request with', "limiter's CPU/request", 'p99 with', 'non-2xx/errors'],
    result.servers.map((s) => [
      s.server,
      s.limiter,
      rate(s.withoutLimiter.requestsPerSecond, ' req/s'),
      rate(s.withLimiter.requestsPerSecond, ' req/s'),
      percent(s.cost),
      us(s.withoutLimiter.cpuUsPerRequest),
      us(s.withLimiter.cpuUsPerRequest),
      us(s.limiterCpuUsPerRequest),
      ms(s.withLimiter.p99Ms),
      String(s.withLimiter.non2xx + s.withLimiter.errors + s.withoutLimiter.non2xx + s.withoutLimiter.errors),
    ]),
    2,
  );
}

export function memoryTable(result: MemoryResult): string {
  return table(
    ['Structure', 'keys', 'requests/key', 'bytes/key', 'heap total'],
    result.figures.map((f) => [
      f.name === 'RateLimiterMemory' ? RLF : `Floodgate ${f.name}`,
      f.keys.toLocaleString('en'),
      String(f.requestsPerKey),
      bytes(f.bytesPerKey),
      `${f.totalMb} MB`,
    ]),
  );
}

export function accuracyTable(result: AccuracyResult): string {
  return table(
    ['Algorithm', 'N per W', 'most admitted in any W', 'estimate (midpoints)', 'promised at most', 'admitted / sent', '503s'],
    result.figures.map((f) => [
      f.algorithm,
      `${f.limit} per ${f.windowMs / 1000} s`,
      String(f.maxInWindow),
      String(f.maxInWindowEstimate),
      String(f.bound),
      `${f.admitted} / ${f.requests}`,
      String(f.unavailable),
    ]),
  );
}

export function floodTable(result: FloodResult): string {
  const perRefused = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
  return table(
    ['Subject', 'Gateways', 'refused/s', 'vs no cache', 'Redis commands / refused', 'decision scripts / refused', 'Redis CPU / refused', 'one Redis core could refuse', 'admitted', 'other answers'],
    result.rows.flatMap((row) =>
      [row.cache, row.noCache].map((v) => [
        row.subject,
        v.name,
        rate(v.refusedPerSecond.median),
        v === row.cache ? ratio(row.speedup) : '1.00x',
        perRefused(v.commandsPerRefused, 4),
        perRefused(v.evalshaPerRefused, 4),
        us(v.redisUsPerRefused),
        rate(1e6 / Math.max(v.redisUsPerRefused, 1e-3)),
        String(v.admitted),
        String(v.other),
      ]),
    ),
    2,
  );
}

export function targets(sections: Sections): Target[] {
  const out: Target[] = [];
  for (const r of sections.inProcess ?? []) {
    for (const x of r.byRules) {
      const need = x.rules === 1 ? 8 : 4;
      out.push({
        section: 'in-process',
        target: `${r.algorithm}, ${x.rules} rule${x.rules === 1 ? '' : 's'}: Floodgate store vs ${RLF}`,
        required: `>= ${need}x`,
        measured: ratio(x.storeVsRlf),
        met: x.storeVsRlf >= need,
      });
    }
  }
  if (sections.redis) {
    const last = sections.redis.byConcurrency.find((c) => c.concurrency === 256) ?? sections.redis.byConcurrency.at(-1);
    for (const c of last?.contenders ?? []) {
      if (c.name === 'batchedFloor' || c.name === 'unbatchedFloor' || c.name === 'rlf') continue;
      out.push({ section: 'redis', target: `${c.name} at c=${last!.concurrency}: vs RateLimiterRedis`, required: '>= 1.3x', measured: ratio(c.vsRlf), met: c.vsRlf >= 1.3 });
      out.push({ section: 'redis', target: `${c.name} at c=${last!.concurrency}: vs batched bare-Lua floor`, required: '>= 80%', measured: percent(c.vsBatchedFloor), met: c.vsBatchedFloor >= 0.8 });
    }
  }
  if (sections.hookPath) {
    const h = sections.hookPath;
    out.push({ section: 'hook path', target: 'messages/s with the limiter vs no plugin', required: '>= 70%', measured: percent(h.limiterVsNoPlugin), met: h.limiterVsNoPlugin >= 0.7 });
  }
  if (sections.endToEnd) {
    const e = sections.endToEnd;
    out.push({ section: 'end to end', target: 'requests/s the limiter costs', required: '<= 5%', measured: percent(Math.max(0, e.cost)), met: e.cost <= 0.05 });
  }
  if (sections.memory) {
    for (const f of sections.memory.figures) {
      if (f.name === 'token_bucket' || f.name === 'fixed_window') {
        out.push({ section: 'memory', target: `${f.name}: bytes per tracked user`, required: '<= 200 B', measured: bytes(f.bytesPerKey), met: f.bytesPerKey <= 200 });
      } else if (f.name.startsWith('sliding_window')) {
        out.push({ section: 'memory', target: `${f.name}: bytes per tracked user (${f.requestsPerKey} req/key)`, required: 'reported, bounded', measured: bytes(f.bytesPerKey), met: Number.isFinite(f.bytesPerKey) });
      }
    }
  }
  for (const f of sections.accuracy?.figures ?? []) {
    if (f.algorithm === 'sliding_window') {
      out.push({ section: 'accuracy', target: `sliding_window across ${sections.accuracy!.instances} processes: most admitted in any W`, required: `= ${f.limit}`, measured: String(f.maxInWindow), met: f.maxInWindow === f.limit });
    }
  }
  for (const row of sections.flood?.rows ?? []) {
    out.push({ section: 'flood', target: `${row.subject}: decision scripts per refused request, with the refusal cache`, required: 'close to 0 (< 0.01)', measured: row.cache.evalshaPerRefused.toFixed(4), met: row.cache.evalshaPerRefused < 0.01 });
    out.push({ section: 'flood', target: `${row.subject}: Redis commands per refused request, without the cache vs with`, required: '>= 10x', measured: ratio(row.commandsSaved), met: row.commandsSaved >= 10 });
    out.push({ section: 'flood', target: `${row.subject}: refused requests/s, with the cache vs without`, required: '>= 10x', measured: ratio(row.speedup), met: row.speedup >= 10 });
    out.push({ section: 'flood', target: `${row.subject}: Redis CPU per refused request, without the cache vs with`, required: '>= 10x', measured: ratio(row.redisWorkSaved), met: row.redisWorkSaved >= 10 });
  }
  return out;
}

export function targetsTable(list: Target[]): string {
  return table(['Section', 'Target', 'Required', 'Measured', 'Met'], list.map((t) => [t.section, t.target, t.required, t.measured, t.met ? 'yes' : 'NO']), 2);
}

export function machineLine(m: MachineInfo): string {
  const load = m.loadAverage.end === undefined ? `${m.loadAverage.start}` : `${m.loadAverage.start} at start, ${m.loadAverage.end} at end`;
  return `${m.cpus} x ${m.cpuModel}, ${m.memoryGb} GB, ${m.platform} ${m.arch}; Node ${m.node} (V8 ${m.v8}); redis-server ${m.redisServer}; load average ${load}`;
}
