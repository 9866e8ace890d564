import { spawnSync } from 'node:child_process';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memoryGb: number;
  platform: string;
  arch: string;
  node: string;
  v8: string;
  redisServer: string;
  /** 1-minute load average when the run started and when it ended (other work on the machine). */
  loadAverage: { start: number; end?: number };
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  const redis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpus: list.length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${platform()} ${release()}`,
    arch: arch(),
    node: process.version,
    v8: process.versions.v8,
    redisServer: /v=(\S+)/.exec(redis.stdout ?? '')?.[1] ?? 'not found',
    loadAverage: { start: Math.round(loadavg()[0]! * 100) / 100 },
  };
}

export function currentLoad(): number {
  return Math.round(loadavg()[0]! * 100) / 100;
}
