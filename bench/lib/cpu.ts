/** Pinning bench processes to CPUs, so the gateway and its load generator never share a core; a process's CPU time. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

let usable: boolean | undefined;

/** Whether processes can be pinned here: `taskset` runs, and there are two CPUs to keep apart. */
export function canPin(): boolean {
  usable ??= availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0;
  return usable;
}

/** `command args` run on CPU `cpu` when pinning is possible (and asked for), else as they are. */
export function onCpu(cpu: number | undefined, command: string, args: string[]): { command: string; args: string[] } {
  if (cpu === undefined || !canPin()) return { command, args };
  return { command: 'taskset', args: ['-c', String(cpu), command, ...args] };
}

let ticksPerSecond: number | undefined;

/** The kernel's clock ticks per second, the unit of /proc/<pid>/stat's CPU times (100 nearly everywhere). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout;
    const ticks = Number(out?.trim());
    ticksPerSecond = Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  }
  return ticksPerSecond;
}

/**
 * CPU time process `pid` has used so far, user plus system, all its threads, in microseconds (from
 * /proc/<pid>/stat: utime and stime, in clock ticks); NaN where /proc cannot be read.
 */
export function processCpuUs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  // The command name, in parentheses, may hold spaces: the fields are counted after its last ')'.
  // There, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / clockTicks()) * 1e6;
}
