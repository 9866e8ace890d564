import type { z } from 'zod';

/** `plugins[0].config.by_user` from zod's path array. */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${quote(value)}`;
}

/** Levenshtein distance, for "did you mean" hints on misspelt field names. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Keys a strict object schema accepts at `path`, for suggestions. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  for (const part of [...path, null]) {
    // Unwrap defaults, optionals and pipes until an object (or nothing) is reached.
    for (let guard = 0; guard < 10; guard++) {
      const def = (current as { _zod?: { def?: Record<string, unknown> } })?._zod?.def;
      if (!def) return [];
      if (def.type === 'object' || def.type === 'array' || def.type === 'record') break;
      current = def.innerType ?? def.in ?? def.schema;
    }
    const def = (current as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (part === null) {
      return def.type === 'object' ? Object.keys(def.shape as object) : [];
    }
    if (def.type === 'object') current = (def.shape as Record<string, unknown>)[String(part)];
    else if (def.type === 'array') current = def.element;
    else if (def.type === 'record') current = def.valueType;
    if (!current) return [];
  }
  return [];
}

/** One readable line per zod issue, naming the field; `prefix` places the path inside a larger document. */
export function formatIssues(error: z.ZodError, schema: z.ZodType, prefix = ''): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const where = formatPath(issue.path, prefix);
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = knownKeys(schema, issue.path);
        for (const key of issue.keys) {
          const hint = closest(key, known);
          const field = formatPath([...issue.path, key], prefix);
          lines.push(`${field}: unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`);
        }
        break;
      }
      case 'invalid_value':
        lines.push(
          `${where}: ${describe(input)} is not allowed; expected one of ${issue.values.map(quote).join(', ')}`,
        );
        break;
      case 'invalid_type':
        lines.push(
          input === undefined
            ? `${where}: required field is missing (expected ${issue.expected})`
            : `${where}: expected ${issue.expected === 'int' ? 'a whole number' : issue.expected}, got ${describe(input)}`,
        );
        break;
      default:
        lines.push(`${where}: ${issue.message}`);
    }
  }
  return lines;
}
