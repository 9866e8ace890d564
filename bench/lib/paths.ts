import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const RATE_LIMITER_PATH = join(REPO_ROOT, 'plugins/rate-limiter/index.ts');
export const MAIN = join(REPO_ROOT, 'src/main.ts');
export const WORKER = join(REPO_ROOT, 'bench/worker.ts');
export const LOAD = join(REPO_ROOT, 'bench/e2e-load.ts');
export const PEER_SERVER = join(REPO_ROOT, 'bench/peer-server.ts');
