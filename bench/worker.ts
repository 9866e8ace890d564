/**
 * Runs one section in a process of its own (fresh heap, no JIT state from other sections; and each
 * in-process algorithm alone, as a deployment runs one): `node --expose-gc --import tsx
 * bench/worker.ts <section> <params as JSON>`. Progress goes to stderr; the result is the last line
 * on stdout, after RESULT_MARK.
 */
import { runAccuracy, type AccuracyParams } from './sections/accuracy.ts';
import { runEndToEnd, type EndToEndParams } from './sections/end-to-end.ts';
import { runFlood, type FloodParams } from './sections/flood.ts';
import { runHookPath, type HookPathParams } from './sections/hook-path.ts';
import { runInProcess, type InProcessParams } from './sections/in-process.ts';
import { runMemory, type MemoryParams } from './sections/memory.ts';
import { runRedis, type RedisParams } from './sections/redis.ts';
import { RESULT_MARK } from './lib/child.ts';

const sections: Record<string, (params: never, log: (line: string) => void) => Promise<unknown>> = {
  'in-process': (p: InProcessParams, log) => runInProcess(p, log),
  redis: (p: RedisParams, log) => runRedis(p, log),
  'hook-path': (p: HookPathParams, log) => runHookPath(p, log),
  'end-to-end': (p: EndToEndParams, log) => runEndToEnd(p, log),
  memory: (p: MemoryParams, log) => runMemory(p, log),
  accuracy: (p: AccuracyParams, log) => runAccuracy(p, log),
  flood: (p: FloodParams, log) => runFlood(p, log),
};

const [name, json] = process.argv.slice(2);
const section = sections[name ?? ''];
if (!section) {
  process.stderr.write(`unknown section ${name}; one of ${Object.keys(sections).join(', ')}\n`);
  process.exit(2);
}
try {
  const result = await section(JSON.parse(json ?? '{}') as never, (line) => process.stderr.write(`  ${line}\n`));
  process.stdout.write(`${RESULT_MARK}${JSON.stringify(result)}\n`, () => process.exit(0));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
