import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InboundMessage, OutboundReply } from '../../../src/bus/messages.ts';
import { CliChannel } from '../../../src/channels/cli.ts';
import { ManualClock } from '../../../src/clock.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { GatewayConfigSchema } from '../../../src/config/schema.ts';
import { Gateway } from '../../../src/gateway.ts';
import { fakeAgent, held, type Replier } from '../support/agent.ts';
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

/** A CliChannel on in-memory streams, whose agent answers each line as `replier` says (by default, an echo). */
async function startCli(userId = 'local', replier: Replier = (message) => reply(message, message.text)) {
  const agent = fakeAgent(replier);
  const term = terminal();
  const logs = captureLogs();
  const config = GatewayConfigSchema.parse({ channels: { cli: { enabled: true, user_id: userId } } }).channels.cli;
  const channel = new CliChannel({ agent, logger: logs.logger, clock: new ManualClock(1234) }, config, term);
  await channel.start();
  onTestFinished(() => channel.stop());
  return { channel, agent, logs, received: agent.received, nextMessage: (n?: number) => agent.next(n), ...term };
}

/** Lets pending promise callbacks and stream writes run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('CliChannel', () => {
  it('greets the user with the available commands', async () => {
    const { written } = await startCli();
    expect(written()).toBe(BANNER);
  });

  it('asks the agent about each line, as a message from the configured user', async () => {
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
    const { input, nextMessage, written } = await startCli('local', (message) => reply(message, `You said: ${message.text}`));
    const next = nextMessage();
    input.write('ping\n');
    await next;
    await settle();
    expect(written()).toBe(`${BANNER}bot> You said: ping\n`);
  });

  it('prints nothing for a quiet reply', async () => {
    const { input, nextMessage, written } = await startCli('local', (message) =>
      reply(message, `reply to ${message.text}`, message.text === 'flood'),
    );
    const second = nextMessage(2);
    input.write('flood\nnormal\n');
    await second;
    await settle();
    expect(written()).toBe(`${BANNER}bot> reply to normal\n`);
  });

  it('answers lines one at a time, in the order typed, however long each answer takes', async () => {
    const answers: ((reply: OutboundReply) => void)[] = [];
    const { input, received, written } = await startCli('local', (message) => {
      const later = held<OutboundReply>();
      answers.push((r) => later.resolve(r));
      return later.promise;
    });
    input.write('first\nsecond\n');
    await settle();
    // The second line waits for the first one's answer before it is asked.
    expect(received.map((m) => m.text)).toEqual(['first']);
    answers[0]!(reply(received[0]!, 'one'));
    await settle();
    expect(received.map((m) => m.text)).toEqual(['first', 'second']);
    answers[1]!(reply(received[1]!, 'two'));
    await settle();
    expect(written()).toBe(`${BANNER}bot> one\nbot> two\n`);
  });

  it('stop() waits for the lines already typed to be answered', async () => {
    const answers: ((reply: OutboundReply) => void)[] = [];
    const { channel, input, received, written } = await startCli('local', (message) => {
      const later = held<OutboundReply>();
      answers.push((r) => later.resolve(r));
      return later.promise;
    });
    input.write('first\nsecond\n');
    await settle();
    let stopped = false;
    const stopping = channel.stop().then(() => (stopped = true));
    answers[0]!(reply(received[0]!, 'one'));
    await settle();
    expect(stopped).toBe(false);
    answers[1]!(reply(received[1]!, 'two'));
    await stopping;
    expect(written()).toBe(`${BANNER}bot> one\nbot> two\n`);
  });

  it('logs an agent that fails outright, prints nothing for that line and answers the next', async () => {
    const { input, nextMessage, written, logs } = await startCli('local', (message) =>
      message.text === 'boom' ? Promise.reject(new Error('agent exploded')) : reply(message, 'fine'),
    );
    const second = nextMessage(2);
    input.write('boom\nok\n');
    await second;
    await settle();
    expect(written()).toBe(`${BANNER}bot> fine\n`);
    expect(logs.withMessage('message handling failed').map((r) => r.err_message)).toEqual(['agent exploded']);
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
    await settle();
    expect(term.written()).toBe(`${BANNER}bot> hi there\n`);
  });
});
