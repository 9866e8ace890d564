/** Plain-text figures and Markdown tables (readable in a terminal, pasteable into the README). */

export function rate(perSecond: number, unit = '/s'): string {
  if (!Number.isFinite(perSecond)) return 'n/a';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(perSecond >= 1e7 ? 1 : 2)} M${unit}`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(perSecond >= 1e5 ? 0 : 1)} k${unit}`;
  return `${perSecond.toFixed(0)}${unit}`;
}

export function ratio(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}x`;
}

export function percent(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${(value * 100).toFixed(value < 0.1 ? 1 : 0)}%`;
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
}

/** Microseconds, e.g. of CPU time per request. */
export function us(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${value.toFixed(1)} µs`;
}

export function bytes(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${Math.round(value)} B`;
}

/** A Markdown table with padded columns; `leftColumns` (default 1) are text, the rest figures. */
export function table(columns: readonly string[], rows: readonly (readonly string[])[], leftColumns = 1): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const left = (i: number) => i < leftColumns;
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (left(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (left(i) ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(columns), rule, ...rows.map(line)].join('\n');
}
