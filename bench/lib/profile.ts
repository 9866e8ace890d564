import type { Plan } from './measure.ts';

/** How long each section runs: `npm run bench` (full), `-- --quick`, and `-- --smoke` (the test's). */
export type ProfileName = 'full' | 'quick' | 'smoke';

export interface Profile {
  name: ProfileName;
  inProcess: Plan & { users: number; rounds: number };
  redis: Plan & { users: number; durationMs: number; concurrency: number[]; latencyAt: number };
  hookPath: Plan & { users: number; messages: number; batch: number };
  endToEnd: Plan & { users: number; durationS: number; connections: number };
  memory: { users: number; fullRingUsers: number; rlfUsers: number };
  accuracy: { algorithms: ('sliding_window' | 'fixed_window' | 'token_bucket')[]; limit: number; windowS: number; windows: number; instances: number; clientsPerInstance: number };
  flood: Plan & { instances: number; clientsPerInstance: number; durationMs: number };
}

const ALL = ['sliding_window', 'fixed_window', 'token_bucket'] as const;

export const PROFILES: Record<ProfileName, Profile> = {
  full: {
    name: 'full',
    inProcess: { users: 10_000, rounds: 60, warmup: 1, runs: 5 },
    redis: { users: 10_000, durationMs: 700, concurrency: [1, 64, 256], latencyAt: 64, warmup: 1, runs: 5 },
    hookPath: { users: 10_000, messages: 200_000, batch: 256, warmup: 2, runs: 7 },
    endToEnd: { users: 100_000, durationS: 5, connections: 32, warmup: 1, runs: 5 },
    memory: { users: 1_000_000, fullRingUsers: 100_000, rlfUsers: 1_000_000 },
    accuracy: { algorithms: [...ALL], limit: 30, windowS: 2, windows: 3, instances: 3, clientsPerInstance: 4 },
    flood: { instances: 3, clientsPerInstance: 8, durationMs: 2_000, warmup: 1, runs: 5 },
  },
  quick: {
    name: 'quick',
    inProcess: { users: 10_000, rounds: 60, warmup: 1, runs: 3 },
    redis: { users: 10_000, durationMs: 400, concurrency: [1, 64, 256], latencyAt: 64, warmup: 1, runs: 3 },
    hookPath: { users: 10_000, messages: 100_000, batch: 256, warmup: 1, runs: 5 },
    endToEnd: { users: 100_000, durationS: 3, connections: 32, warmup: 1, runs: 2 },
    memory: { users: 1_000_000, fullRingUsers: 50_000, rlfUsers: 200_000 },
    accuracy: { algorithms: [...ALL], limit: 20, windowS: 1, windows: 2, instances: 3, clientsPerInstance: 3 },
    flood: { instances: 3, clientsPerInstance: 8, durationMs: 1_500, warmup: 1, runs: 3 },
  },
  smoke: {
    name: 'smoke',
    inProcess: { users: 1_000, rounds: 40, warmup: 0, runs: 1 },
    redis: { users: 1_000, durationMs: 100, concurrency: [1, 64, 256], latencyAt: 64, warmup: 0, runs: 1 },
    hookPath: { users: 1_000, messages: 5_000, batch: 256, warmup: 0, runs: 1 },
    endToEnd: { users: 1_000, durationS: 0.5, connections: 8, warmup: 0, runs: 1 },
    memory: { users: 20_000, fullRingUsers: 2_000, rlfUsers: 20_000 },
    accuracy: { algorithms: ['sliding_window'], limit: 10, windowS: 1, windows: 1, instances: 3, clientsPerInstance: 2 },
    flood: { instances: 3, clientsPerInstance: 2, durationMs: 400, warmup: 0, runs: 1 },
  },
};
