import type { Clock } from '../clock.ts';

export interface ToolCall {
  tool: string;
  args: Record<string, unknown>;
}

export interface Tool {
  usage: string;
  /** Builds the tool's arguments from the text after the command. */
  parse(rest: string): Record<string, unknown>;
  /** `signal` aborts when the message is cancelled (its client went away): a slow tool stops early. */
  run(args: Record<string, unknown>, clock: Clock, signal: AbortSignal): string | Promise<string>;
}

/** Longest /wait, so one message cannot hold the agent for long. */
export const MAX_WAIT_MS = 10_000;

/** Resolves after `ms`, or as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

const CORPUS: readonly { title: string; text: string }[] = [
  { title: 'Sliding windows', text: 'A sliding window never admits more than N requests in any window of length W.' },
  { title: 'Fixed windows', text: 'A fixed window counter resets at each boundary and can admit a burst of twice the limit.' },
  { title: 'Token buckets', text: 'A token bucket refills at a steady rate and allows short bursts up to its capacity.' },
  { title: 'Retry-After', text: 'The Retry-After header says how many seconds to wait before the next request is admitted.' },
  { title: 'Tenants', text: 'A tenant limit caps all users of one organisation together.' },
  { title: 'Plugins', text: 'Plugins register hooks that run before a prompt is fetched and before a tool is invoked.' },
  { title: 'Privacy', text: 'User and tenant identifiers are used in plugin keys only, never in replies or logs.' },
];

function search(query: string): string {
  const words = query.toLowerCase().split(/\W+/).filter(Boolean);
  if (words.length === 0) return 'Tell me what to look for: /search <words>.';
  const scored = CORPUS.map((doc) => {
    const haystack = `${doc.title} ${doc.text}`.toLowerCase();
    return { doc, score: words.filter((w) => haystack.includes(w)).length };
  })
    .filter((entry) => entry.score > 0)
    .sort((a, b) => b.score - a.score)
    .slice(0, 3);
  if (scored.length === 0) return `Nothing found for "${query}".`;
  return scored.map(({ doc }) => `${doc.title}: ${doc.text}`).join('\n');
}

/** The demo agent's built-in tools, by command name. */
export const TOOLS: ReadonlyMap<string, Tool> = new Map<string, Tool>([
  [
    'echo',
    {
      usage: '/echo <text>',
      parse: (rest) => ({ text: rest }),
      run: (args) => String(args.text ?? ''),
    },
  ],
  [
    'time',
    {
      usage: '/time',
      parse: () => ({}),
      run: (_args, clock) => `It is ${new Date(clock.now()).toISOString()}.`,
    },
  ],
  [
    // A slow call, e.g. a long model answer: what concurrency caps are about.
    'wait',
    {
      usage: '/wait <ms>',
      parse: (rest) => ({ ms: Number.parseInt(rest, 10) }),
      run: async (args, _clock, signal) => {
        const ms = Math.min(MAX_WAIT_MS, Math.max(0, Number.isFinite(args.ms) ? Number(args.ms) : 0));
        await pause(ms, signal);
        return signal.aborted ? 'Stopped waiting.' : `Waited ${ms} ms.`;
      },
    },
  ],
  [
    'search',
    {
      usage: '/search <words>',
      parse: (rest) => ({ query: rest }),
      run: (args) => search(String(args.query ?? '')),
    },
  ],
]);

export const TOOL_USAGE = [...TOOLS.values()].map((t) => t.usage).join(', ');

/** `/search cats` → a call of `search`; plain text → null; an unknown command → its name. */
export function parseCommand(text: string): ToolCall | { unknown: string } | null {
  const match = /^\s*\/(\S+)\s*([\s\S]*)$/.exec(text);
  if (!match) return null;
  const name = match[1]!.toLowerCase();
  const tool = TOOLS.get(name);
  if (!tool) return { unknown: name };
  return { tool: name, args: tool.parse(match[2]!.trim()) };
}
