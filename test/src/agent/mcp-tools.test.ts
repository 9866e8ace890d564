import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { McpTools } from '../../../src/agent/mcp-tools.ts';
import { McpServerSchema } from '../../../src/config/agent-schema.ts';
import { FloodgateError } from '../../../src/errors.ts';
import { EVERYTHING_SERVER, everythingOverStdio, mcpTestsEnabled } from '../../hosts/mcp/support.ts';
import { freePort } from '../../support/redis.ts';
import { captureLogs } from '../support/logs.ts';

const enabled = mcpTestsEnabled();

let tools: McpTools | undefined;
let httpServer: ChildProcess | undefined;
afterEach(async () => {
  await tools?.close();
  httpServer?.kill();
  tools = httpServer = undefined;
});

function start(servers: Record<string, unknown>[]) {
  const logs = captureLogs();
  const configs = servers.map((s) => McpServerSchema.parse(s));
  return McpTools.start(configs, { logger: logs.logger, configDir: process.cwd(), env: process.env, clientInfo: { name: 'floodgate-test', version: '0' } });
}

async function startFailure(servers: Record<string, unknown>[]): Promise<FloodgateError> {
  const error = await start(servers).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FloodgateError);
  return error as FloodgateError;
}

describe.skipIf(!enabled)('McpTools with the real everything server', () => {
  it('offers the chosen tools as OpenAI functions (their input schemas as parameters) and runs them over stdio', async () => {
    tools = await start([everythingOverStdio()]);
    const specs = tools.specs;
    expect(specs.map((s) => s.function.name)).toEqual(['echo', 'get-sum']);
    const echo = specs[0]!;
    expect(echo).toMatchObject({ type: 'function', function: { description: 'Echoes back the input string' } });
    expect(echo.function.parameters).toMatchObject({ type: 'object', properties: { message: { type: 'string' } }, required: ['message'] });
    expect(echo.function.parameters.$schema).toBeUndefined();

    expect(await tools.call('echo', { message: 'hello there' }, undefined)).toEqual({ text: 'Echo: hello there', failed: false });
    expect(await tools.call('get-sum', { a: 2, b: 40 }, undefined)).toEqual({ text: 'The sum of 2 and 40 is 42.', failed: false });
    // A tool the config did not choose is not there, even though the server has it.
    expect(tools.has('get-env')).toBe(false);
    expect(await tools.call('get-env', {}, undefined)).toMatchObject({ failed: true });
  });

  it("wrong arguments are the tool's error, told as a result", async () => {
    tools = await start([everythingOverStdio()]);
    const result = await tools.call('get-sum', { a: 'two' }, undefined);
    expect(result.failed).toBe(true);
    expect(result.text.length).toBeGreaterThan(0);
  });

  it('reaches a server over Streamable HTTP', async () => {
    const port = await freePort();
    httpServer = spawn(process.execPath, [EVERYTHING_SERVER, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the HTTP server did not start')), 15_000);
      httpServer!.stderr!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    tools = await start([{ name: 'remote', url: `http://127.0.0.1:${port}/mcp`, tools: ['echo'] }]);
    expect(await tools.call('echo', { message: 'over http' }, undefined)).toEqual({ text: 'Echo: over http', failed: false });
  });

  it('a tool the config names that the server lacks is a startup error listing what it has', async () => {
    const error = await startFailure([everythingOverStdio('everything', ['echo', 'ecko'])]);
    expect(error.code).toBe('FG_ERR_AGENT_START');
    expect(error.message).toMatch(/agent\.mcp_servers\[0\]\.tools: the server has no tool "ecko" \(it has: .*echo.*get-sum/);
  });

  it('two servers offering one tool name is a startup error naming both', async () => {
    const error = await startFailure([everythingOverStdio('first'), everythingOverStdio('second', ['echo'])]);
    expect(error.message).toContain('agent.mcp_servers[1] (second): tool "echo" is also offered by "first"');
  });
});

describe('McpTools: servers that cannot start', () => {
  it('a command that does not exist is a startup error naming the server', async () => {
    const error = await startFailure([{ name: 'ghost', command: '/nonexistent/mcp-server' }]);
    expect(error.code).toBe('FG_ERR_AGENT_START');
    expect(error.message).toContain('agent.mcp_servers[0] (ghost): cannot start');
    expect(error.message).toContain('ENOENT');
  });

  it('a program that exits at once: the error quotes its last stderr lines', async () => {
    const error = await startFailure([{ name: 'crashy', command: process.execPath, args: ['-e', 'console.error("missing flag --root"); process.exit(3)'] }]);
    expect(error.message).toContain('agent.mcp_servers[0] (crashy): cannot start');
    expect(error.message).toContain('missing flag --root');
  });

  it('a program that never answers the handshake is given up after startup_timeout_ms', async () => {
    const started = performance.now();
    const error = await startFailure([{ name: 'mute', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], startup_timeout_ms: 500 }]);
    expect(error.message).toMatch(/agent\.mcp_servers\[0\] \(mute\): cannot start: .*500 ms/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
