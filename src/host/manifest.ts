import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../config/issues.ts';
import { errorMessage } from '../errors.ts';
import { HOOK_NAMES, type HookName } from '../hooks/schemas.ts';

export const MANIFEST_FILE = 'plugin-manifest.yaml';

const ManifestSchema = z.strictObject({
  name: z.string().min(1),
  version: z.string().min(1),
  description: z.string().min(1),
  /** The module that defines the plugin, relative to the manifest; needed when the manifest is not beside it. */
  entry: z.string().min(1).optional(),
  available_hooks: z.array(z.enum(HOOK_NAMES as [HookName, ...HookName[]])).min(1),
  default_config: z.record(z.string(), z.unknown()).default({}),
});
export type PluginManifest = z.infer<typeof ManifestSchema>;

/** Reads `plugin-manifest.yaml` from a plugin's folder; returns the manifest or the problems found. */
export function readManifest(dir: string): { manifest: PluginManifest } | { problems: string[] } {
  return readManifestFile(join(dir, MANIFEST_FILE));
}

export function readManifestFile(file: string): { manifest: PluginManifest } | { problems: string[] } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    return { problems: [`${file}: cannot read manifest (${errorMessage(error)})`] };
  }
  const result = ManifestSchema.safeParse(raw, { reportInput: true });
  if (!result.success) return { problems: formatIssues(result.error, ManifestSchema).map((p) => `${file}: ${p}`) };
  return { manifest: result.data };
}
