/** Runs a section in its own process (see worker.ts) and returns what it printed after RESULT_MARK. */
import { spawn } from 'node:child_process';
import { REPO_ROOT, WORKER } from './paths.ts';

export const RESULT_MARK = '@@bench-result ';

export function runWorker<T>(section: string, params: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', WORKER, section, JSON.stringify(params)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (code !== 0 || line === undefined) {
        reject(new Error(`section ${section} failed (exit ${code ?? signal})`));
        return;
      }
      resolve(JSON.parse(line.slice(RESULT_MARK.length)) as T);
    });
  });
}
