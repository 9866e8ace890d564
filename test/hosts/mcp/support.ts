import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A real MCP server for the model agent's tests: the protocol's reference "everything" server
 * (`@modelcontextprotocol/server-everything`), installed in this folder's own node_modules, which CI
 * installs (`npm ci --prefix test/hosts/mcp`) and the root install does not.
 */
export const HOST_DIR = import.meta.dirname;
export const EVERYTHING_SERVER = join(HOST_DIR, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** The config of the everything server over stdio, under `name`, offering `tools` (default: echo and get-sum). */
export function everythingOverStdio(name = 'everything', tools: string[] | undefined = ['echo', 'get-sum']): Record<string, unknown> {
  return { name, command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'], ...(tools ? { tools } : {}) };
}

/**
 * Whether the MCP tests run: skipped with a loud message when the server is not installed, except
 * under CI, where that is a failure (CI installs it).
 */
export function mcpTestsEnabled(): boolean {
  if (existsSync(EVERYTHING_SERVER)) return true;
  if (process.env.CI === 'true') throw new Error('the MCP test server is not installed; CI must run `npm ci --prefix test/hosts/mcp`');
  console.warn('\n*** MCP test server not installed: MCP tests are SKIPPED. Run `npm ci --prefix test/hosts/mcp`. ***\n');
  return false;
}
