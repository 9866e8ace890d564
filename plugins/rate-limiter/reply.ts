export const TEMPLATE_PLACEHOLDERS = ['retry_after', 'limit'] as const;

export const DEFAULT_MESSAGE = "You're sending messages a little too fast. Please wait {retry_after} and try again.";

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** What is wrong with a reply template, if anything: only {retry_after} and {limit} may appear. */
export function templateProblems(template: string): string[] {
  const problems: string[] = [];
  if (template.trim() === '') problems.push('the message must not be empty');
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name)) {
      problems.push(
        `unknown placeholder {${name}}; the message may use only ${TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(' and ')}`,
      );
    }
  }
  return problems;
}

/** "1 second", "45 seconds", "2 minutes", "3 hours": whole units, rounded up so the user waits long enough. */
function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

export function humanDuration(seconds: number): string {
  if (seconds < 120) return plural(Math.max(1, Math.ceil(seconds)), 'second');
  if (seconds < 2 * 3600) return plural(Math.ceil(seconds / 60), 'minute');
  if (seconds < 2 * 86_400) return plural(Math.ceil(seconds / 3600), 'hour');
  return plural(Math.ceil(seconds / 86_400), 'day');
}

/** A template cut at its placeholders once: `texts` around each of `slots` (texts.length = slots.length + 1). */
interface CompiledTemplate {
  texts: string[];
  slots: (typeof TEMPLATE_PLACEHOLDERS)[number][];
}

function compileTemplate(template: string): CompiledTemplate {
  const texts: string[] = [];
  const slots: CompiledTemplate['slots'] = [];
  let text = '';
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1];
    text += template.slice(last, match.index);
    last = match.index + match[0].length;
    if (name === 'retry_after' || name === 'limit') {
      texts.push(text);
      slots.push(name);
      text = '';
    } else {
      // Not a placeholder: left as written.
      text += match[0];
    }
  }
  texts.push(text + template.slice(last));
  return { texts, slots };
}

/** Templates seen so far (a limiter has one, or a few across reloads), so a refusal does no parsing. */
const compiled = new Map<string, CompiledTemplate>();

/** The friendly reply. Only the wait and the limit go in: never an id, never a rule's key. */
export function renderReply(template: string, retryAfterSeconds: number, limitText: string): string {
  let parts = compiled.get(template);
  if (parts === undefined) {
    parts = compileTemplate(template);
    if (compiled.size < 64) compiled.set(template, parts);
  }
  let reply = parts.texts[0]!;
  for (let i = 0; i < parts.slots.length; i++) {
    reply += (parts.slots[i] === 'retry_after' ? humanDuration(retryAfterSeconds) : limitText) + parts.texts[i + 1]!;
  }
  return reply;
}
