import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatIssues } from '../config/issues.ts';
import type { PluginEntry } from '../config/schema.ts';
import { ErrorCode, errorMessage, problemsError } from '../errors.ts';
import { locatePlugin } from './locate.ts';
import type { PluginManifest } from './manifest.ts';
import { isPluginDefinition, type PluginDefinition } from './plugin.ts';

/** A listed, enabled plugin whose module loaded and whose manifest and config are valid: ready to start. */
export interface PreparedPlugin {
  entry: PluginEntry;
  definition: PluginDefinition;
  manifest: PluginManifest;
  /** The entry's config over the manifest's defaults, as the plugin's schema parsed it. */
  config: unknown;
}

/** The mode a listed plugin runs in (a disabled one is never prepared). */
export function modeOf(entry: PluginEntry): 'enforce' | 'permissive' {
  return entry.mode === 'permissive' ? 'permissive' : 'enforce';
}

/**
 * Loads the module of every enabled plugin config.json lists and validates its manifest and config,
 * before any plugin starts. Nothing is half-checked: every problem of every plugin is reported at
 * once, in one error naming `configPath` (plugin paths are relative to its folder).
 */
export async function preparePlugins(entries: readonly PluginEntry[], configPath: string): Promise<PreparedPlugin[]> {
  const problems: string[] = [];
  const prepared: PreparedPlugin[] = [];
  const seen = new Set<string>();
  for (const [index, entry] of entries.entries()) {
    const where = `plugins[${index}] (${entry.name})`;
    if (seen.has(entry.name)) problems.push(`${where}.name: another plugin is already listed as "${entry.name}"`);
    seen.add(entry.name);
    if (!entry.enabled || entry.mode === 'disabled') continue;

    const result = await prepareEntry(entry, where, dirname(configPath));
    if ('problems' in result) problems.push(...result.problems);
    else prepared.push(result);
  }
  if (problems.length > 0) {
    throw problemsError(ErrorCode.PluginConfig, `${configPath}: invalid plugin configuration`, problems);
  }
  return prepared;
}

/** One entry: its module, its manifest and its config, or the first of these that is wrong. */
async function prepareEntry(entry: PluginEntry, where: string, configDir: string): Promise<PreparedPlugin | { problems: string[] }> {
  const located = locatePlugin(entry, where, configDir);
  if ('problems' in located) return located;
  const { manifest, modulePath } = located;
  let definition: unknown;
  try {
    definition = ((await import(pathToFileURL(modulePath).href)) as { default?: unknown }).default;
  } catch (error) {
    return { problems: [`${where}.path: cannot load ${modulePath} (${errorMessage(error)})`] };
  }
  if (!isPluginDefinition(definition)) {
    return { problems: [`${where}.path: ${modulePath} does not export a plugin (definePlugin(...)) as default`] };
  }
  if (manifest.name !== definition.name) {
    return { problems: [`${where}: manifest names "${manifest.name}" but the module defines "${definition.name}"`] };
  }
  const raw = { ...manifest.default_config, ...entry.config };
  const parsed = definition.configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) return { problems: formatIssues(parsed.error, definition.configSchema, `${where}.config`) };
  return { entry, definition, manifest, config: parsed.data };
}
