import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PluginEntry } from '../config/schema.ts';
import { MANIFEST_FILE, readManifestFile, type PluginManifest } from './manifest.ts';

/** The folder whose plugin-manifest.yaml names the plugins that come with Floodgate. */
export const BUNDLED_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A listed plugin's manifest and the module it names. */
export interface LocatedPlugin {
  manifest: PluginManifest;
  modulePath: string;
}

type Located = LocatedPlugin | { problems: string[] };

/**
 * Finds a listed plugin from its `path`: a folder (its manifest's `entry` names the module), a module
 * (its manifest beside it, or in a folder above whose `entry` names this very module: a package's
 * manifest at its root), or nothing, for a plugin that comes with Floodgate, found by name. Problems
 * say what was looked for, and where.
 */
export function locatePlugin(entry: PluginEntry, where: string, configDir: string): Located {
  if (entry.path === undefined) return bundled(entry.name, where);
  const target = resolve(configDir, entry.path);
  if (!existsSync(target)) return { problems: [`${where}.path: ${target} does not exist`] };
  if (statSync(target).isDirectory()) return fromFolder(target, where);
  return forModule(target, where);
}

function bundled(name: string, where: string): Located {
  const file = join(BUNDLED_ROOT, MANIFEST_FILE);
  const read = readManifestFile(file);
  if ('manifest' in read && read.manifest.name === name && read.manifest.entry !== undefined) {
    return { manifest: read.manifest, modulePath: resolve(BUNDLED_ROOT, read.manifest.entry) };
  }
  const known = 'manifest' in read ? `"${read.manifest.name}"` : 'none';
  return { problems: [`${where}.path: required: no plugin named "${name}" comes with Floodgate (looked in ${file}; it names ${known})`] };
}

function fromFolder(folder: string, where: string): Located {
  const file = join(folder, MANIFEST_FILE);
  const read = readManifestFile(file);
  if ('problems' in read) return { problems: read.problems.map((p) => `${where}: ${p}`) };
  if (read.manifest.entry === undefined) return { problems: [`${where}: ${file}: entry: required when path names the folder`] };
  return { manifest: read.manifest, modulePath: resolve(folder, read.manifest.entry) };
}

function forModule(modulePath: string, where: string): Located {
  const beside = join(dirname(modulePath), MANIFEST_FILE);
  if (existsSync(beside)) {
    const read = readManifestFile(beside);
    if ('problems' in read) return { problems: read.problems.map((p) => `${where}: ${p}`) };
    return { manifest: read.manifest, modulePath };
  }
  const looked = [beside];
  for (let dir = dirname(dirname(modulePath)); ; dir = dirname(dir)) {
    const file = join(dir, MANIFEST_FILE);
    looked.push(file);
    if (existsSync(file)) {
      const read = readManifestFile(file);
      if ('problems' in read) return { problems: read.problems.map((p) => `${where}: ${p}`) };
      if (read.manifest.entry !== undefined && resolve(dir, read.manifest.entry) === modulePath) return { manifest: read.manifest, modulePath };
    }
    if (dirname(dir) === dir) break;
  }
  return {
    problems: [`${where}: ${beside}: cannot read manifest (none beside the module, and none above it names it as its entry; looked in ${looked.join(', ')})`],
  };
}
