import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, rateLimiterEntry, writeConfig } from './support/gateway-process.ts';

describe('npm run chat', () => {
  it('tells a terminal flooder to slow down once per cooldown, not on every refused line', async () => {
    const path = writeConfig({ channels: { http: { port: 0 } }, plugins: [rateLimiterEntry({ by_user: '3/m' })] });
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli-chat.ts'), '--config', path], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const lines = ['hello', '/echo ping', '/time', 'four', 'five', 'six', 'seven', 'eight'];
    child.stdin.end(`${lines.join('\n')}\n`);
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    const replies = output.split('\n').filter((l) => l.startsWith('bot> '));
    const slowDowns = replies.filter((l) => /too fast/.test(l));
    expect(slowDowns).toHaveLength(1);
    expect(replies).toHaveLength(4);
    expect(replies).toContain('bot> ping');
  });
});
