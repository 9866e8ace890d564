/**
 * Floodgate's benchmark: `npm run bench` (about 8 minutes on 2 cores), `npm run bench -- --quick` (about 4),
 * `-- --smoke` (seconds; what the smoke test runs). Options: `--out <file>` (default
 * bench/results.json), `--only <section,...>` (in-process, redis, hook-path, end-to-end, memory,
 * accuracy, flood).
 *
 * Each section runs in a worker process of its own; a throw-away redis-server is started on a free
 * port for the Redis sections (never the machine's own). Prints the tables and writes the same
 * figures, with machine information and a timestamp, as JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { startRedis, type RedisProcess } from '../test/support/redis.ts';
import { runWorker } from './lib/child.ts';
import { ALGORITHM_NAMES } from './lib/fixtures.ts';
import { currentLoad, machineInfo } from './lib/machine.ts';
import { PROFILES, type ProfileName } from './lib/profile.ts';
import { REPO_ROOT } from './lib/paths.ts';
import * as report from './lib/report.ts';
import type { AccuracyResult } from './sections/accuracy.ts';
import type { EndToEndResult } from './sections/end-to-end.ts';
import type { FloodResult } from './sections/flood.ts';
import type { HookPathResult } from './sections/hook-path.ts';
import type { InProcessResult } from './sections/in-process.ts';
import type { MemoryResult } from './sections/memory.ts';
import type { RedisResult } from './sections/redis.ts';

export const SECTION_NAMES = ['in-process', 'redis', 'hook-path', 'end-to-end', 'memory', 'accuracy', 'flood'] as const;
type SectionName = (typeof SECTION_NAMES)[number];

interface Args {
  profile: ProfileName;
  out: string;
  only: SectionName[];
}

const USAGE = `usage: npm run bench [-- --quick | --smoke] [--out <file>] [--only <${SECTION_NAMES.join(',')}>]`;

function parseArgs(argv: string[]): Args {
  const args: Args = { profile: 'full', out: resolve(REPO_ROOT, 'bench/results.json'), only: [...SECTION_NAMES] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') args.profile = 'quick';
    else if (arg === '--smoke') args.profile = 'smoke';
    else if (arg === '--out') args.out = resolve(argv[++i] ?? '');
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      const unknown = names.filter((n) => !(SECTION_NAMES as readonly string[]).includes(n));
      if (unknown.length > 0 || names.length === 0) throw new Error(`--only: unknown section ${unknown.join(', ')}\n${USAGE}`);
      args.only = names as SectionName[];
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  return args;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const profile = PROFILES[args.profile];
  const machine = machineInfo();
  const started = performance.now();
  const timestamp = new Date().toISOString();
  progress(`floodgate bench (${profile.name}): ${report.machineLine(machine)}`);

  const wants = (name: SectionName) => args.only.includes(name);
  const sections: report.Sections = {};
  let redis: RedisProcess | undefined;
  const stopRedis = () => redis?.process.kill('SIGKILL');
  process.once('exit', stopRedis);
  try {
    if (wants('redis') || wants('accuracy') || wants('flood')) {
      redis = await startRedis();
      progress(`redis-server started on port ${redis.port}`);
    }
    if (wants('in-process')) {
      sections.inProcess = [];
      for (const algorithm of ALGORITHM_NAMES) {
        progress(`▶ in-process decisions: ${algorithm}`);
        sections.inProcess.push(await runWorker<InProcessResult>('in-process', { ...profile.inProcess, algorithm }));
      }
    }
    if (wants('redis')) {
      progress('▶ redis decisions');
      sections.redis = await runWorker<RedisResult>('redis', { ...profile.redis, url: redis!.url });
    }
    if (wants('hook-path')) {
      progress('▶ hook path');
      sections.hookPath = await runWorker<HookPathResult>('hook-path', profile.hookPath);
    }
    if (wants('end-to-end')) {
      progress('▶ end to end');
      sections.endToEnd = await runWorker<EndToEndResult>('end-to-end', profile.endToEnd);
    }
    if (wants('memory')) {
      progress('▶ memory per tracked user');
      sections.memory = await runWorker<MemoryResult>('memory', profile.memory);
    }
    if (wants('accuracy')) {
      progress('▶ accuracy across processes');
      sections.accuracy = await runWorker<AccuracyResult>('accuracy', { ...profile.accuracy, redisUrl: redis!.url });
    }
    if (wants('flood')) {
      progress('▶ flood: refusals with and without the refusal cache');
      sections.flood = await runWorker<FloodResult>('flood', { ...profile.flood, redisUrl: redis!.url });
    }
  } finally {
    await redis?.stop();
    process.off('exit', stopRedis);
  }

  machine.loadAverage.end = currentLoad();
  const targets = report.targets(sections);
  const durationS = Math.round((performance.now() - started) / 100) / 10;
  const printed = render(profile.name, machine, sections, targets, durationS);
  process.stdout.write(`${printed}\n`);

  const results = { benchmark: 'floodgate', profile: profile.name, timestamp, durationS, machine, settings: profile, sections, targets };
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(results, null, 2)}\n`);
  progress(`results written to ${args.out}`);
}

function render(profile: string, machine: ReturnType<typeof machineInfo>, s: report.Sections, targets: report.Target[], durationS: number): string {
  const parts: string[] = [`# Floodgate benchmark (${profile}, ${durationS} s)`, '', report.machineLine(machine), ''];
  const add = (title: string, note: string, body: string) => parts.push(`## ${title}`, '', note, '', body, '');
  if (s.inProcess?.length) {
    const first = s.inProcess[0]!;
    add(
      '1. In-process decisions/s',
      `${first.users.toLocaleString('en')} users x ${first.requestsPerUser} requests each, round-robin from fresh state (30 admitted, then 30 refused, per user), 30/m; 3 rules = user + tenant (10 users, 300/m) + tool. Floor: a bare Map counter, same lookups. RLF: consume() awaited; with 3 rules, three limiters in turn. Store: MemoryStore.decide() with the Policy's keys and the system clock. Full limiter path: RateLimiter.prompt (+ tool for 3 rules) with a subject.`,
      report.inProcessTable(s.inProcess),
    );
  }
  if (s.redis) {
    add(
      '2. Redis decisions/s',
      `Local redis-server ${s.redis.server}, ${s.redis.users.toLocaleString('en')} users, 30/m, runs of ${s.redis.durationMs} ms from an empty database; c = decisions in flight. Floor: INCR + PEXPIRE per key, the requests of one tick in one Lua call (batched as the store is); unbatched floor: one Lua call per request.`,
      report.redisTable(s.redis),
    );
  }
  if (s.hookPath) {
    add('3. Hook path (in process, through the gateway\'s answer, agent and plugin host)', `${s.hookPath.messages.toLocaleString('en')} messages per run from ${s.hookPath.users.toLocaleString('en')} users (${s.hookPath.refused} refused), memory store, sliding_window 30/m.`, report.hookPathTable(s.hookPath));
  }
  if (s.endToEnd) {
    add(
      '4. End to end (POST /v1/messages, autocannon in a second process)',
      `${s.endToEnd.connections} connections, ${s.endToEnd.durationS} s per run${s.endToEnd.pinned ? ', servers and autocannon on separate CPUs' : ''}, ${s.endToEnd.users.toLocaleString('en')} users in rotation (30/m each); the limiter costs ${(Math.max(0, s.endToEnd.cost) * 100).toFixed(1)}% of requests/s (${(Math.max(0, s.endToEnd.costNoHeaders) * 100).toFixed(1)}% with headers "none").`,
      [
        report.endToEndTable(s.endToEnd),
        `The same load on peers, each with and without its usual limiter (in-memory store, 30/m keyed per user by the body's user_id): fastify with @fastify/rate-limit (its preHandler hook, after the body is parsed), express with express-rate-limit (after express.json()); both echo as Floodgate does. Limiter costs: 1 - with/without requests/s; CPU/request: the server process's user + system time over a run / requests served; the limiter's: with minus without.`,
        report.endToEndServersTable(s.endToEnd),
      ].join('\n\n'),
    );
  }
  if (s.memory) {
    add('5. Memory per tracked user', `Heap plus array buffers after full GCs; keys like the plugin's, ${s.memory.keyLength} characters.`, report.memoryTable(s.memory));
  }
  if (s.accuracy) {
    add(
      `6. Accuracy: one user flooding ${s.accuracy.instances} gateway processes that share one Redis`,
      '"Most admitted in any W" counts admissions whose whole send-to-receive interval fits in one window (certain); the estimate places each at its midpoint.',
      report.accuracyTable(s.accuracy),
    );
  }
  if (s.flood) {
    add(
      `7. A flood that costs Redis nothing: one subject flooding ${s.flood.instances} gateway processes that share one Redis`,
      `${s.flood.clientsPerInstance} requests in flight per gateway for ${s.flood.durationMs / 1000} s per run, the subject refused throughout; the gateways with the refusal cache (the default) and with \`refusal_cache: false\` take turns. Redis figures from INFO commandstats before and after each run, per refused request; "Redis CPU" is the commands' usec, and what one Redis core could refuse is 1 s over it.`,
      report.floodTable(s.flood),
    );
  }
  add('Targets', 'Ratios are medians of per-run ratios (both figures from the same round).', report.targetsTable(targets));
  return parts.join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
