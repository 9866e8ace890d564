/**
 * `text` cut to at most `max` UTF-16 units (the stricter way chat platforms count), ending with an
 * ellipsis when cut, and never splitting a character in two.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let out = '';
  for (const char of text) {
    if (out.length + char.length > max - 1) break;
    out += char;
  }
  return `${out}…`;
}
