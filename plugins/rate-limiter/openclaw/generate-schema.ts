/**
 * Writes openclaw.plugin.json's configSchema from the zod schemas (npm run openclaw:schema). A test
 * fails when the committed manifest and the schemas disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openClawConfigSchema } from './schema.ts';

export const MANIFEST = fileURLToPath(new URL('../openclaw.plugin.json', import.meta.url));

export function manifestText(current: Record<string, unknown>): string {
  return `${JSON.stringify({ ...current, configSchema: openClawConfigSchema() }, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const current = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Record<string, unknown>;
  writeFileSync(MANIFEST, manifestText(current));
  console.log(`wrote ${MANIFEST}`);
}
