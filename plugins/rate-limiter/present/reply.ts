/**
 * The texts a refused user reads, one template per kind of refusal, each with the placeholders that
 * kind has numbers for. Only waits, limits and counts go in: never an id, never a rule's key.
 */
export const REPLY_PLACEHOLDERS = {
  /** Over a rate or a token budget. */
  message: ['retry_after', 'limit'],
  /** Too many calls in flight: `{in_progress}` reads "you have 2 requests in progress" or "your team has ...". */
  concurrency_message: ['in_progress', 'retry_after'],
  /** One call larger than a whole token budget. */
  too_large_message: ['tokens', 'limit'],
  /** The shared backend is down and on_backend_error is "closed". */
  unavailable_message: ['retry_after'],
  /** Blocked for repeated flooding (block.message): `{duration}` is the block's length, `{retry_after}` what is left of it. */
  blocked_message: ['duration', 'retry_after'],
  /** A client address over its by_address limit (answered before the request's body is read). */
  address_message: ['retry_after', 'limit'],
  /** A user, tenant or address on a deny list: nothing to wait for. */
  denied_message: [],
} as const;

export type ReplyKind = keyof typeof REPLY_PLACEHOLDERS;
type Placeholder = (typeof REPLY_PLACEHOLDERS)[ReplyKind][number];

export const DEFAULT_REPLIES: Record<ReplyKind, string> = {
  message: "You're sending messages a little too fast. Please wait {retry_after} and try again.",
  concurrency_message: 'Sorry, {in_progress} already. Please wait for one to finish and try again.',
  too_large_message: 'Sorry, that request is too large: it needs about {tokens} tokens, and the limit is {limit}. Please make it shorter.',
  unavailable_message: "Sorry, I can't take messages for a moment. Please try again shortly.",
  blocked_message: "You've kept sending messages after being asked to slow down, so I'm pausing our chat for a while. Please write again in {retry_after}.",
  address_message: 'Too many requests from your network. Please wait {retry_after} and try again.',
  denied_message: "Sorry, I can't take messages from you here. If you think this is a mistake, please contact the operator.",
};

export const DEFAULT_MESSAGE = DEFAULT_REPLIES.message;

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** What is wrong with a reply template, if anything: only its kind's placeholders may appear. */
export function templateProblems(template: string, kind: ReplyKind = 'message'): string[] {
  const allowed: readonly string[] = REPLY_PLACEHOLDERS[kind];
  const problems: string[] = [];
  if (template.trim() === '') problems.push('the message must not be empty');
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    if (!allowed.includes(name)) {
      if (allowed.length === 0) {
        problems.push(`unknown placeholder {${name}}; this message takes no placeholders`);
        continue;
      }
      const list = allowed.map((p) => `{${p}}`);
      const words = list.length === 1 ? list[0] : `${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
      problems.push(`unknown placeholder {${name}}; the message may use only ${words}`);
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

/** "you have 1 request in progress", "your team has 3 requests in progress". */
export function inProgress(limit: number, whose: 'user' | 'tenant'): string {
  return `${whose === 'tenant' ? 'your team has' : 'you have'} ${plural(limit, 'request')} in progress`;
}

/** A template cut at its placeholders once: `texts` around each of `slots` (texts.length = slots.length + 1). */
interface CompiledTemplate {
  texts: string[];
  slots: string[];
}

function compileTemplate(template: string): CompiledTemplate {
  const texts: string[] = [];
  const slots: string[] = [];
  let text = '';
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    text += template.slice(last, match.index);
    last = match.index + match[0].length;
    texts.push(text);
    slots.push(match[1]!);
    text = '';
  }
  texts.push(text + template.slice(last));
  return { texts, slots };
}

/** Templates seen so far (a limiter has a few, or a few more across reloads), so a refusal does no parsing. */
const compiled = new Map<string, CompiledTemplate>();

/**
 * The template with its placeholders filled in. A name `values` lacks is left as written, so a
 * template can say "{user}" literally, and no value it was not meant to show can get in.
 */
export function renderTemplate(template: string, values: Partial<Record<Placeholder, string>>): string {
  let parts = compiled.get(template);
  if (parts === undefined) {
    parts = compileTemplate(template);
    if (compiled.size < 64) compiled.set(template, parts);
  }
  let reply = parts.texts[0]!;
  for (let i = 0; i < parts.slots.length; i++) {
    const name = parts.slots[i]!;
    reply += (Object.hasOwn(values, name) ? values[name as Placeholder] : `{${name}}`) + parts.texts[i + 1]!;
  }
  return reply;
}

/** The rate-limited reply: the wait in words and the limit. */
export function renderReply(template: string, retryAfterSeconds: number, limitText: string): string {
  return renderTemplate(template, { retry_after: humanDuration(retryAfterSeconds), limit: limitText });
}
