import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MessageBus } from '../../../src/bus/bus.ts';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { CliChannel } from '../../../src/channels/cli.ts';
import { ManualClock } from '../../../src/clock.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { GatewayConfigSchema } from '../../../src/config/schema.ts';
import { Gateway } from '../../../src/gateway.ts';
import { captureLogs } from '../support/logs.ts';

const BANNER = 'Floodgate chat. Type a message, or /search <words>, /echo <text>, /time. Ctrl-D quits.\n';

function terminal() {
  const input = new PassThrough();
  const output = new PassThrough();
  let written = '';
  output.setEncoding('utf8');
  output.on('data', (chunk: string) => (written += chunk));
  return { input, output, written: () => written };
}

function reply(message: InboundMessage, text: string, quiet = false): OutboundReply {
  return {
    messageId: message.id,
    channel: message.channel,
    conversationId: message.conversationId,
    kind: quiet ? 'refused' : 'answer',
    status: quiet ? 429 : 200,
    text,
    headers: {},
    silent: quiet,
  };
}

/** A CliChannel on in-memory streams; every message published is handed to `onMessage`. */
async function startCli(userId = 'local', onMessage: (message: InboundMessage, channel: CliChannel) => void = () => {}) {
  const bus = new MessageBus();
  const term = terminal();
  const config = GatewayConfigSchema.parse({ channels: { cli: { enabled: true, user_id: userId } } }).channels.cli;
  const channel = new CliChannel({ bus, logger: captureLogs().logger, clock: new ManualClock(1234) }, config, term);
  const received: InboundMessage[] = [];
  const waiters: { count: number; resolve: (m: InboundMessage) => void }[] = [];
  bus.on('message:in', (message) => {
    received.push(message);
    onMessage(message, channel);
    for (const waiter of waiters.filter((w) => w.count === received.length)) waiter.resolve(message);
  });
  /** Resolves with the `n`th message published from now on (default: the next one). */
  const nextMessage = (n = 1) =>
    new Promise<InboundMessage>((resolve) => waiters.push({ count: received.length + n, resolve }));
  await channel.start();
  onTestFinished(() => channel.stop());
  return { channel, bus, received, nextMessage, ...term };
}

describe('CliChannel', () => {
  it('greets the user with the available commands', async () => {
    const { written } = await startCli();
    expect(written()).toBe(BANNER);
  });

  it('publishes each line as a message from the configured user', async () => {
    const { input, nextMessage } = await startCli('operator');
    const next = nextMessage();
    input.write('hello there\n');
    expect(await next).toEqual({
      id: expect.any(String),
      channel: 'cli',
      userId: 'operator',
      conversationId: 'cli',
      text: 'hello there',
      receivedAt: 1234,
    });
  });

  it('prints a reply as a "bot> " line', async () => {
    const { input, nextMessage, written } = await startCli('local', (message, channel) =>
      channel.send(reply(message, `You said: ${message.text}`)),
    );
    const next = nextMessage();
    input.write('ping\n');
    await next;
    expect(written()).toBe(`${BANNER}bot> You said: ping\n`);
  });

  it('prints nothing for a quiet reply', async () => {
    const { input, nextMessage, written } = await startCli('local', (message, channel) =>
      channel.send(reply(message, `reply to ${message.text}`, message.text === 'flood')),
    );
    const second = nextMessage(2);
    input.write('flood\nnormal\n');
    await second;
    expect(written()).toBe(`${BANNER}bot> reply to normal\n`);
  });

  it('ignores blank and whitespace-only lines', async () => {
    const { input, nextMessage, received } = await startCli();
    const next = nextMessage();
    input.write('\n   \n\t\nreal line\n');
    await next;
    expect(received.map((m) => m.text)).toEqual(['real line']);
  });

  it('keeps the text of a line as typed, surrounding spaces included', async () => {
    const { input, nextMessage } = await startCli();
    const next = nextMessage();
    input.write('  /echo  spaced  \n');
    expect((await next).text).toBe('  /echo  spaced  ');
  });

  it('resolves `closed` when the input ends', async () => {
    const { channel, input } = await startCli();
    input.end();
    await expect(channel.closed).resolves.toBeUndefined();
  });

  it('stops reading lines after stop()', async () => {
    const { channel, input, received } = await startCli();
    await channel.stop();
    input.write('after stop\n');
    await new Promise((resolve) => setImmediate(resolve));
    expect(received).toHaveLength(0);
  });
});

describe('CliChannel in a gateway', () => {
  it('answers a typed line through the agent', async () => {
    const term = terminal();
    const loaded = parseConfig(
      JSON.stringify({ channels: { http: { enabled: false }, cli: { enabled: true } } }),
      '/virtual/config.json',
    );
    const gateway = await Gateway.start({ loaded, logger: captureLogs().logger, clock: new ManualClock(0), cliStreams: term });
    onTestFinished(() => gateway.stop());
    expect(gateway.http).toBeUndefined();
    const replied = new Promise<OutboundReply>((resolve) => gateway.bus.once('message:out', resolve));
    term.input.write('/echo hi there\n');
    await replied;
    expect(term.written()).toBe(`${BANNER}bot> hi there\n`);
  });
});
