import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');
const SDK = join(SRC, 'plugin-sdk.ts');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) found.push(match[1]!);
  for (const match of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) found.push(match[1]!);
  for (const match of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(match[1]!);
  for (const match of text.matchAll(/declare module\s*['"]([^'"]+)['"]/g)) found.push(match[1]!);
  return found;
}

describe('the plugin SDK boundary', () => {
  const pluginFiles = sourceFiles(join(ROOT, 'plugins'));

  it('finds the plugins and their imports (the scan itself works)', () => {
    expect(pluginFiles.length).toBeGreaterThan(10);
    const all = pluginFiles.flatMap(specifiers);
    expect(all.filter((s) => resolve(SRC, '..', s) === SDK || s.endsWith('src/plugin-sdk.ts')).length).toBeGreaterThan(5);
  });

  it('plugins import nothing from src/ but the plugin SDK', () => {
    const outside: string[] = [];
    for (const file of pluginFiles) {
      for (const specifier of specifiers(file)) {
        if (!specifier.startsWith('.')) continue;
        const target = resolve(dirname(file), specifier);
        if (target.startsWith(SRC + '/') && target !== SDK) outside.push(`${relative(ROOT, file)} → ${specifier}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it('src/ names no rate-limit concept: plugins bring their own words', () => {
    const mentions: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (/rate[-_ ]?limit|limiter/i.test(line)) mentions.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(mentions).toEqual([]);
  });
});
