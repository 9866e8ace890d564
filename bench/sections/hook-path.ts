/**
 * 3. The hook path in process: messages/s through the gateway's answer (as a channel asks it: the bus
 * told of each message and reply), the agent and the plugin host (the real prePromptFetch hook), with
 * the rate limiter enabled (memory store, default algorithm, 30/m) and with no plugin at all; no HTTP.
 * Messages go out in batches and a run ends when every reply is back.
 * Each message is a new object with a new user id string, as a channel would deliver it (built before
 * the clock starts). The clock runs 1 ms ahead per reading, so each of the 10,000 users sends one
 * message per 10 simulated seconds: every message is admitted, the limiter's common case.
 */
import { parseConfig } from '../../src/config/load.ts';
import { systemClock, type Clock } from '../../src/clock.ts';
import type { InboundMessage, OutboundReply } from '../../src/bus/messages.ts';
import { Gateway } from '../../src/gateway.ts';
import { USER_RATE, fresh, quietLogger, userId } from '../lib/fixtures.ts';
import { collectGarbage, interleave, pairedRatio, perSecond, rateFigure, timed, type Plan, type RateFigure, type Throughput } from '../lib/measure.ts';
import { RATE_LIMITER_PATH } from '../lib/paths.ts';

export interface HookPathParams extends Plan {
  users: number;
  messages: number;
  batch: number;
}

export interface HookPathResult {
  users: number;
  messages: number;
  noPlugin: RateFigure;
  limiter: RateFigure;
  /** Median per-run ratio of limiter to no-plugin messages/s. */
  limiterVsNoPlugin: number;
  refused: number;
}

/** A clock that moves 1 ms further ahead at every reading. */
class RunningClock implements Clock {
  private ahead = 0;
  now(): number {
    return systemClock.now() + (this.ahead += 1);
  }
}

interface Host {
  gateway: Gateway;
  send(messages: InboundMessage[], batch: number): Promise<void>;
  refused: number;
}

async function startHost(withLimiter: boolean): Promise<Host> {
  const plugins = withLimiter ? [{ name: 'rate_limiter', path: RATE_LIMITER_PATH, config: { by_user: USER_RATE.text } }] : [];
  const loaded = parseConfig(JSON.stringify({ channels: { http: { enabled: false } }, plugins }), `${process.cwd()}/bench-config.json`);
  const gateway = await Gateway.start({ loaded, clock: new RunningClock(), logger: quietLogger('info') });
  const host: Host = {
    gateway,
    refused: 0,
    async send(messages, batch) {
      const replies: Promise<OutboundReply>[] = new Array(batch);
      for (let sent = 0; sent < messages.length; sent += batch) {
        const end = Math.min(messages.length, sent + batch);
        replies.length = end - sent;
        for (let i = sent; i < end; i++) replies[i - sent] = gateway.answer(messages[i]!);
        for (const reply of await Promise.all(replies)) if (reply.kind !== 'answer') host.refused++;
      }
    },
  };
  return host;
}

function messagesFor(count: number, users: number, offset: number): InboundMessage[] {
  const messages: InboundMessage[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const n = offset + i;
    messages[i] = {
      id: `m${n}`,
      channel: 'http',
      userId: fresh(userId(n % users)),
      conversationId: `c${n % users}`,
      text: 'hello there',
      receivedAt: 0,
    };
  }
  return messages;
}

export async function runHookPath(params: HookPathParams, log: (line: string) => void): Promise<HookPathResult> {
  log('hook path: plugin host with the rate limiter vs no plugin');
  const hosts = { noPlugin: await startHost(false), limiter: await startHost(true) };
  try {
    let offset = 0;
    const run = (host: Host) => async (): Promise<Throughput> => {
      const messages = messagesFor(params.messages, params.users, offset);
      offset += params.messages;
      collectGarbage();
      return timed(messages.length, () => host.send(messages, params.batch));
    };
    const samples = await interleave(
      [
        { name: 'noPlugin', run: run(hosts.noPlugin) },
        { name: 'limiter', run: run(hosts.limiter) },
      ],
      params,
    );
    return {
      users: params.users,
      messages: params.messages,
      noPlugin: rateFigure(samples.noPlugin!),
      limiter: rateFigure(samples.limiter!),
      limiterVsNoPlugin: pairedRatio(samples.limiter!.map(perSecond), samples.noPlugin!.map(perSecond)),
      refused: hosts.limiter.refused,
    };
  } finally {
    await hosts.noPlugin.gateway.stop();
    await hosts.limiter.gateway.stop();
  }
}
