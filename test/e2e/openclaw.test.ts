import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_PREFIX } from '../../plugins/rate-limiter/openclaw/adapter.ts';
import {
  contentText,
  openClawTestsEnabled,
  removeGatewayDir,
  startFakeModel,
  startFakeTelegram,
  startOpenClaw,
  type FakeModel,
  type FakeTelegram,
  type ModelAnswer,
  type ModelRequest,
  type RunningOpenClaw,
  type TelegramSender,
} from '../hosts/openclaw/support.ts';
import { freePort, redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';

/**
 * Floodgate's limiter inside real OpenClaw gateways (openclaw 2026.9.6 under Node 24), the plugin
 * loaded from its folder as a user would, Telegram and the model both fakes on loopback. One
 * gateway keeps its state in memory (floods, tool limits, ids); two more share one Redis.
 */
const enabled = openClawTestsEnabled();
const withRedis = enabled && redisTestsEnabled();

const INTERNAL_CONTEXT = '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>';
const FRIENDLY = /sending messages a little too fast\. Please wait \d+ seconds? and try again\./;

const ALICE: TelegramSender = { id: 5550001, firstName: 'Alice' };
const BOB: TelegramSender = { id: 5550002, firstName: 'Bob' };
const CAROL: TelegramSender = { id: 5550003, firstName: 'Carol' };
const DAVE: TelegramSender = { id: 5550004, firstName: 'Dave' };
const SENDER_IDS = [ALICE, BOB, CAROL, DAVE].map((sender) => String(sender.id));

/** Every message text the model was shown, across all its requests. */
function seenByModel(model: FakeModel): string {
  return model.requests.flatMap((request) => request.messages.map((message) => contentText(message.content))).join('\n');
}

/**
 * Answers every request, tool results included: a message asking for "use-exec" gets an exec tool
 * call (a harmless echo) until a tool result follows it; everything else gets text.
 */
function lastIndex<T>(items: readonly T[], test: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (test(items[i]!)) return i;
  return -1;
}

function answer(request: ModelRequest): ModelAnswer {
  const lastTool = lastIndex(request.messages, (m) => m.role === 'tool');
  // OpenClaw adds a user message of internal context after a tool result (it may quote the ask): not an ask.
  const asks = (m: ModelRequest['messages'][number]) =>
    m.role === 'user' && !contentText(m.content).startsWith(INTERNAL_CONTEXT) && contentText(m.content).includes('use-exec');
  const lastAsk = lastIndex(request.messages, asks);
  if (lastAsk >= 0 && lastTool < lastAsk) return { tool: 'exec', arguments: { command: 'echo floodgate-tool-ran' } };
  return { text: 'pong' };
}

/** Waits for `condition`; on a timeout the error shows what was sent and what the model was asked. */
async function waitFor(what: string, condition: () => boolean, seen: { telegram: FakeTelegram; model: FakeModel }, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) {
      const asked = seen.model.requests.map((r) => r.messages.map((m) => `${m.role}: ${contentText(m.content).slice(-80)}`).join(' | '));
      throw new Error(`timed out waiting for ${what}\nsent: ${JSON.stringify(seen.telegram.sent)}\nmodel requests:\n${asked.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sentTo = (telegram: FakeTelegram, sender: TelegramSender) => telegram.sent.filter((m) => m.chatId === sender.id).map((m) => m.text);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!enabled)('the rate limiter in OpenClaw', () => {
  let model: FakeModel;
  let telegram: FakeTelegram;
  let gateway: RunningOpenClaw;
  let redis: RedisProcess | undefined;
  let sharedModel: FakeModel;
  const shared: { telegram: FakeTelegram; gateway: RunningOpenClaw }[] = [];
  const memory = () => ({ telegram, model });

  beforeAll(async () => {
    model = await startFakeModel(answer);
    telegram = await startFakeTelegram();
    const memoryGateway = startOpenClaw({
      telegram,
      model,
      port: await freePort(),
      pluginConfig: { by_user: '2/m', by_tool: { exec: '1/m' } },
    }).then((started) => (gateway = started));
    const starts: Promise<unknown>[] = [memoryGateway];
    if (withRedis) {
      redis = await startRedis();
      sharedModel = await startFakeModel(answer);
      const pluginConfig = { by_user: '3/m', backend: 'redis', redis_url: redis.url, redis_timeout_ms: 500 };
      for (let i = 0; i < 2; i++) {
        const bot = await startFakeTelegram();
        const port = await freePort();
        starts.push(startOpenClaw({ telegram: bot, model: sharedModel, port, pluginConfig }).then((started) => shared.push({ telegram: bot, gateway: started })));
      }
    }
    // Started together: each takes 10 to 50 s, most of it before the plugin loads.
    await Promise.all(starts);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([gateway, ...shared.map((s) => s.gateway)].filter((g) => g !== undefined).map((g) => g.stop()));
    await Promise.all([telegram, ...shared.map((s) => s.telegram)].filter((t) => t !== undefined).map((t) => t.close()));
    await Promise.all([model, sharedModel].filter((m) => m !== undefined).map((m) => m.close()));
    await redis?.stop();
    // FLOODGATE_KEEP_OPENCLAW=1 keeps the gateways' folders (config, state, log) to look into.
    if (process.env.FLOODGATE_KEEP_OPENCLAW !== '1') for (const g of [gateway, ...shared.map((s) => s.gateway)]) if (g) removeGatewayDir(g);
  }, 60_000);

  it("answers a flood with one friendly reply, keeps the refused messages from the model, and serves others", async () => {
    for (let i = 1; i <= 5; i++) telegram.send(ALICE, `flood-${i}`);
    await waitFor('two answers and a slow-down reply', () => sentTo(telegram, ALICE).length >= 3, memory());
    telegram.send(BOB, 'hello from bob');
    await waitFor("Bob's answer", () => sentTo(telegram, BOB).length >= 1, memory());
    // The two silent refusals have had time to send something, had they sent anything.
    await pause(2_000);

    const replies = sentTo(telegram, ALICE);
    expect(replies.filter((text) => FRIENDLY.test(text))).toHaveLength(1);
    expect(replies.filter((text) => text === 'pong')).toHaveLength(2);
    expect(replies).toHaveLength(3);
    expect(sentTo(telegram, BOB)).toEqual(['pong']);

    const seen = seenByModel(model);
    const admitted = [1, 2, 3, 4, 5].filter((i) => seen.includes(`flood-${i}`));
    expect(admitted).toHaveLength(2);
    expect(seen).toContain('hello from bob');
  }, 120_000);

  it('blocks a tool over its by_tool limit, and the model reads which limit and when to retry', async () => {
    telegram.send(CAROL, 'use-exec first');
    await waitFor("Carol's first answer", () => sentTo(telegram, CAROL).length >= 1, memory());
    telegram.send(CAROL, 'use-exec second');
    await waitFor("Carol's second answer", () => sentTo(telegram, CAROL).length >= 2, memory());

    // Each tool call's result, by call id (later requests repeat the earlier results).
    const results = new Map<string, string>();
    for (const request of model.requests) {
      for (const message of request.messages) if (message.role === 'tool') results.set(message.tool_call_id ?? '', contentText(message.content));
    }
    // The first call ran on the host; the second was refused before it ran.
    const outcomes = [...results.values()];
    expect(outcomes).toHaveLength(2);
    expect(outcomes[0]).toContain('floodgate-tool-ran');
    expect(outcomes[1]).toMatch(/^Rate limited: the exec tool call was not run, because it is over this tool's per-user limit \(1\/m\)\. Retry in \d+ seconds?, not before\.$/);
    for (const id of SENDER_IDS) expect(outcomes[1]).not.toContain(id);
  }, 120_000);

  it('puts no user id in any reply or any line the plugin logs', () => {
    for (const message of telegram.sent) for (const id of SENDER_IDS) expect(message.text).not.toContain(id);
    const lines = gateway.log();
    const ours = lines.filter((line) => line.includes(LOG_PREFIX));
    // The plugin does log: that it is ready, its registrations, and each refusal (with a salted hash).
    expect(ours.some((line) => line.includes('rate limiter ready'))).toBe(true);
    expect(ours.some((line) => line.includes('request refused'))).toBe(true);
    for (const line of ours) for (const id of SENDER_IDS) expect(line).not.toContain(id);
    // OpenClaw's own channel lines name senders ("Inbound message telegram:<id>"); no plugin line does.
    const withIds = lines.filter((line) => SENDER_IDS.some((id) => line.includes(id)));
    for (const line of withIds) expect(JSON.parse(line)['0']).not.toContain('"plugins"');
  });

  it('keeps one limiter for every registration of the module', () => {
    // OpenClaw registers the module more than once (registration modes "full", then "discovery"); the
    // flood above was counted exactly, and one limiter was opened for all of them.
    const modes = gateway
      .log()
      .filter((line) => line.includes(`${LOG_PREFIX}hooks registered`))
      .map((line) => /registration_mode\\?":\\?"([a-z-]+)/.exec(line)?.[1]);
    expect(modes).toContain('full');
    expect(modes.length).toBeGreaterThanOrEqual(2);
    expect(gateway.log().filter((line) => line.includes(`${LOG_PREFIX}rate limiter ready`))).toHaveLength(1);
  });

  it.skipIf(!withRedis)('shares one limit between two gateways on one Redis', async () => {
    const [a, b] = shared as [(typeof shared)[0], (typeof shared)[0]];
    a.telegram.send(DAVE, 'shared-1');
    a.telegram.send(DAVE, 'shared-2');
    await waitFor('two answers from the first gateway', () => sentTo(a.telegram, DAVE).length >= 2, { telegram: a.telegram, model: sharedModel });
    b.telegram.send(DAVE, 'shared-3');
    await waitFor('an answer from the second gateway', () => sentTo(b.telegram, DAVE).length >= 1, { telegram: b.telegram, model: sharedModel });
    b.telegram.send(DAVE, 'shared-4');
    await waitFor("the second gateway's slow-down reply", () => sentTo(b.telegram, DAVE).length >= 2, { telegram: b.telegram, model: sharedModel });
    a.telegram.send(DAVE, 'shared-5');
    await waitFor("the first gateway's slow-down reply", () => sentTo(a.telegram, DAVE).length >= 3, { telegram: a.telegram, model: sharedModel });

    expect(sentTo(a.telegram, DAVE)).toEqual(['pong', 'pong', expect.stringMatching(FRIENDLY)]);
    expect(sentTo(b.telegram, DAVE)).toEqual(['pong', expect.stringMatching(FRIENDLY)]);
    const seen = seenByModel(sharedModel);
    for (const admitted of ['shared-1', 'shared-2', 'shared-3']) expect(seen).toContain(admitted);
    for (const refused of ['shared-4', 'shared-5']) expect(seen).not.toContain(refused);
  }, 120_000);
});
