/** Pinning bench processes to CPUs, so the gateway and its load generator never share a core. */
import { spawnSync } from 'node:child_process';
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
