import { describe, expect, it } from 'vitest';
import { StepCall } from '../../../src/util/step-call.ts';

describe('StepCall', () => {
  it('aborts its signal at finish(), with an AbortError', () => {
    const call = new StepCall(undefined);
    const signal = call.signal;
    expect(signal.aborted).toBe(false);
    expect(call.aborted).toBe(false);
    call.finish();
    expect(signal.aborted).toBe(true);
    expect(call.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(DOMException);
    expect((signal.reason as DOMException).name).toBe('AbortError');
    expect((signal.reason as DOMException).message).toBe('This operation was aborted');
  });

  it('hands out one signal, made on first read', () => {
    const call = new StepCall(undefined);
    expect(call.signal).toBe(call.signal);
  });

  it('a signal first read after finish() is already aborted', () => {
    const call = new StepCall(undefined);
    call.finish();
    expect(call.signal.aborted).toBe(true);
  });

  it('aborts when the upstream signal aborts, read before or after', () => {
    const early = new AbortController();
    const read = new StepCall(early.signal);
    const signal = read.signal;
    let heard = 0;
    signal.addEventListener('abort', () => heard++);
    early.abort();
    expect(signal.aborted).toBe(true);
    expect(read.aborted).toBe(true);
    expect(heard).toBe(1);
    read.finish();
    expect(heard).toBe(1);

    const late = new AbortController();
    const unread = new StepCall(late.signal);
    late.abort();
    expect(unread.aborted).toBe(true);
    expect(unread.signal.aborted).toBe(true);
  });

  it('an upstream that had aborted before the step began does not abort it early', () => {
    const call = new StepCall(AbortSignal.abort());
    expect(call.aborted).toBe(false);
    expect(call.signal.aborted).toBe(false);
    call.finish();
    expect(call.signal.aborted).toBe(true);
  });

  it('stops listening to the upstream at finish()', () => {
    const upstream = new AbortController();
    const call = new StepCall(upstream.signal);
    const signal = call.signal;
    call.finish();
    let heard = 0;
    signal.addEventListener('abort', () => heard++);
    upstream.abort();
    expect(heard).toBe(0);
  });

  it('abandon() aborts a signal already read with its reason, and one read later is made aborted', () => {
    const reason = new Error('timed out');
    const read = new StepCall(undefined);
    const signal = read.signal;
    read.abandon(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    expect(read.aborted).toBe(true);

    const unread = new StepCall(undefined);
    unread.abandon(reason);
    expect(unread.aborted).toBe(true);
    expect(unread.signal.aborted).toBe(true);
    expect(unread.signal.reason).toBe(reason);
  });

  it('abandon() after finish() changes nothing', () => {
    const call = new StepCall(undefined);
    const signal = call.signal;
    call.finish();
    call.abandon(new Error('late'));
    expect((signal.reason as DOMException).name).toBe('AbortError');
  });
});
