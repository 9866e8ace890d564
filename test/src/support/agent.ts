import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import type { Answerer } from '../../../src/channels/channel.ts';

/**
 * How a fake agent answers: a reply, a promise of one (answered when it settles), or undefined for
 * never answering at all.
 */
export type Replier = (message: InboundMessage, signal?: AbortSignal) => OutboundReply | Promise<OutboundReply> | undefined;

export interface FakeAgent extends Answerer {
  /** Every message asked about, in order. */
  readonly received: InboundMessage[];
  /** The signal each message was asked with, in the same order. */
  readonly signals: (AbortSignal | undefined)[];
  /** Resolves with the `n`th message asked about from now on (default: the next one). */
  next(n?: number): Promise<InboundMessage>;
}

/** An Answerer for channel tests: `replier` decides each answer. */
export function fakeAgent(replier?: Replier): FakeAgent {
  const received: InboundMessage[] = [];
  const signals: (AbortSignal | undefined)[] = [];
  const waiters: { count: number; resolve: (message: InboundMessage) => void }[] = [];
  return {
    received,
    signals,
    next(n = 1) {
      return new Promise((resolve) => waiters.push({ count: received.length + n, resolve }));
    },
    answer(message, signal) {
      received.push(message);
      signals.push(signal);
      for (const waiter of waiters.filter((w) => w.count === received.length)) waiter.resolve(message);
      const reply = replier?.(message, signal);
      return reply === undefined ? new Promise<OutboundReply>(() => {}) : Promise.resolve(reply);
    },
  };
}

/** A promise of an answer the test gives later (or never). */
export function held<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves once `signal` has aborted (at once if it has already). */
export function aborted(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return Promise.reject(new Error('no signal'));
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
