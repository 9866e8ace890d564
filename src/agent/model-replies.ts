import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { Violation } from '../hooks/schemas.ts';
import type { ModelFailure } from './model-stream.ts';

/** "1 second", "90 seconds", "3 minutes", "5 hours", "3 days": a wait as a person says it, rounded up (as the refusals say it). */
export function duration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (seconds < 120) return unit(Math.max(1, Math.ceil(seconds)), 'second');
  if (seconds < 2 * 3600) return unit(Math.ceil(seconds / 60), 'minute');
  if (seconds < 2 * 86_400) return unit(Math.ceil(seconds / 3600), 'hour');
  return unit(Math.ceil(seconds / 86_400), 'day');
}

interface FailureReply {
  status: number;
  code: string;
  text: (retryAfter: number | undefined) => string;
}

/** What the user is told when the model's provider fails; never the provider's own words. */
const FAILURE_REPLIES: Record<ModelFailure, FailureReply> = {
  busy: {
    status: 503,
    code: 'model_busy',
    text: (retryAfter) =>
      retryAfter === undefined
        ? 'Sorry, the model is busy right now. Please try again in a moment.'
        : `Sorry, the model is busy right now. Please try again in ${duration(retryAfter)}.`,
  },
  unavailable: { status: 502, code: 'model_unavailable', text: () => 'Sorry, the model could not answer just now. Please try again in a moment.' },
  rejected: { status: 502, code: 'model_error', text: () => 'Sorry, something went wrong on our side. Please try again later.' },
  timeout: { status: 504, code: 'model_timeout', text: () => 'Sorry, the model took too long to answer. Please try again.' },
  cut: { status: 502, code: 'model_error', text: () => "Sorry, the model's answer broke off. Please try again." },
  malformed: { status: 502, code: 'model_error', text: () => "Sorry, the model's answer broke off. Please try again." },
};

function reply(message: InboundMessage, fields: Pick<OutboundReply, 'kind' | 'status' | 'text'> & Partial<OutboundReply>): OutboundReply {
  return { messageId: message.id, channel: message.channel, conversationId: message.conversationId, headers: {}, silent: false, ...fields };
}

export function modelFailureReply(message: InboundMessage, failure: ModelFailure, retryAfter: number | undefined, headers: Record<string, string> | undefined): OutboundReply {
  const { status, code, text } = FAILURE_REPLIES[failure];
  const answer = reply(message, { kind: 'error', status, code, text: text(retryAfter), headers: headers ?? {} });
  if (retryAfter !== undefined) answer.retryAfter = retryAfter;
  return answer;
}

/** The model asked for tools round after round, past max_tool_rounds. */
export function tooManyRoundsReply(message: InboundMessage, headers: Record<string, string> | undefined): OutboundReply {
  return reply(message, {
    kind: 'answer',
    status: 200,
    text: 'Sorry, I could not finish that: it needed more tool calls than I may make for one message. Please ask for less at once.',
    headers: headers ?? {},
  });
}

/** Nobody waits for this answer any more (the client hung up); no channel shows it. */
export function cancelledReply(message: InboundMessage): OutboundReply {
  return reply(message, { kind: 'error', status: 499, code: 'cancelled', text: 'Stopped: the answer is no longer awaited.' });
}

/** The model answered with nothing at all. */
export const EMPTY_ANSWER = 'Sorry, I have no answer to that.';

/**
 * What the model reads when a plugin refused one of its tool calls: which tool, the refusal's code,
 * the plugin's details (which limit, which window), when it may try again, and the sentence the user
 * would have been told. No ids: a refusal never carries them.
 */
export function refusedToolText(tool: string, violation: Violation): string {
  const parts = [`The ${tool} tool call was not run: it was refused (${violation.code}).`];
  const details = Object.entries(violation.details)
    .filter(([, value]) => typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    .map(([name, value]) => `${name}: ${String(value)}`);
  if (details.length > 0) parts.push(`Details: ${details.join(', ')}.`);
  if (violation.retryAfter !== undefined) parts.push(`It may be called again in ${duration(violation.retryAfter)}, not before.`);
  parts.push(`The user would be told: "${violation.description}"`);
  parts.push(violation.retryAfter === undefined ? 'Tell the user.' : 'Tell the user, and do not call it again before then.');
  return parts.join(' ');
}
