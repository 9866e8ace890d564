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
export function humanDuration(seconds: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds < 120) return plural(Math.max(1, Math.ceil(seconds)), 'second');
  if (seconds < 2 * 3600) return plural(Math.ceil(seconds / 60), 'minute');
  if (seconds < 2 * 86_400) return plural(Math.ceil(seconds / 3600), 'hour');
  return plural(Math.ceil(seconds / 86_400), 'day');
}

/** The friendly reply. Only the wait and the limit go in: never an id, never a rule's key. */
export function renderReply(template: string, retryAfterSeconds: number, limitText: string): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    if (name === 'retry_after') return humanDuration(retryAfterSeconds);
    if (name === 'limit') return limitText;
    return whole;
  });
}
