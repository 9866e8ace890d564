import { afterEach, describe, expect, it } from 'vitest';
import { TELEGRAM_FLOODER_ID, TELEGRAM_SECRET, TELEGRAM_SECRET_HEADER, TELEGRAM_SUPERGROUP_ID, telegramUpdate } from '../support/platforms.ts';
import { redisTestsEnabled, startRedis, type RedisProcess } from '../support/redis.ts';
import {
  logLines,
  postRaw,
  rateLimiterEntry,
  sendMessage,
  startGateways,
  type MessageResult,
  type RunningGateway,
} from './support/gateway-process.ts';

/**
 * Escalating blocks through real gateway processes sharing one real redis-server: a repeat flooder's
 * blocks grow whichever gateway their messages reach, each block is told once, and one admin reset
 * frees the flooder everywhere. Blocks here last seconds (real time: the gateways decide on Redis's
 * clock); the Redis timeout is raised from its 50 ms default so that a busy machine cannot push a
 * decision onto the local fallback (each test checks that none was).
 */

const TOKEN = 'blocks-admin-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const FLOODER = 'Repeat.Flooder@example.com';
const MESSAGE = 'Blocked for {duration}. Back in {retry_after}.';

const gateways: RunningGateway[] = [];
let redis: RedisProcess | undefined;
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await redis?.stop();
  redis = undefined;
});

/** Two gateways on one redis-server: 1 message per 30 s, then blocks of 2 s and 6 s after one refusal. */
async function startPair(): Promise<[RunningGateway, RunningGateway]> {
  redis = await startRedis();
  const limiter = {
    by_user: '1/30s',
    backend: 'redis',
    redis_url: redis.url,
    redis_timeout_ms: 1_000,
    block: { after: 1, durations: ['2s', '6s'], decay_after: '1h', message: MESSAGE },
  };
  const config = {
    channels: {
      http: { host: '127.0.0.1', port: 0, admin_token: TOKEN },
      telegram: { enabled: true, secret_token: TELEGRAM_SECRET },
    },
    plugins: [rateLimiterEntry(limiter)],
  };
  const started = await startGateways(2, config);
  gateways.push(...started);
  return [started[0]!, started[1]!];
}

const send = (gateway: RunningGateway) => sendMessage(gateway.url, { user_id: FLOODER, text: 'hello again' });

async function limits(gateway: RunningGateway): Promise<{ blocks: { rule: string; blocked: boolean; level: number; retry_after: number; strikes: number }[] }> {
  const response = await fetch(`${gateway.url}/v1/admin/limits?user_id=${encodeURIComponent(FLOODER)}`, { headers: auth });
  expect(response.status).toBe(200);
  return (await response.json()) as Awaited<ReturnType<typeof limits>>;
}

/** Sends to `gateway` until an answer is not a block (blocked requests change nothing); that answer. */
async function afterTheBlock(gateway: RunningGateway, timeoutMs: number): Promise<MessageResult> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer = await send(gateway);
    if (answer.body.error !== 'blocked') return answer;
    if (performance.now() > deadline) throw new Error(`still blocked after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function expectNoFallback(all: readonly RunningGateway[]): void {
  for (const g of all) expect(logLines(g, 'redis backend failing')).toEqual([]);
}

async function metricsOf(gateway: RunningGateway): Promise<string> {
  return (await fetch(`${gateway.url}/metrics`)).text();
}

describe.skipIf(!redisTestsEnabled())('escalating blocks shared by two gateway processes through Redis', () => {
  it("a repeat flooder's blocks grow across both gateways, and one admin reset frees them everywhere", async () => {
    const [one, two] = await startPair();

    expect((await send(one)).status).toBe(200);
    const refused = await send(two);
    expect(refused).toMatchObject({ status: 429, body: { error: 'rate_limited' } });

    // The second refusal, on the other gateway, starts the first block (2 s).
    const blocked = await send(one);
    expect(blocked.status).toBe(429);
    expect(blocked.body).toEqual({ error: 'blocked', reply: 'Blocked for 2 seconds. Back in 2 seconds.', retry_after: 2 });
    expect(blocked.headers.get('retry-after')).toBe('2');
    // The other gateway holds the same block.
    const shared = await send(two);
    expect(shared.body.error).toBe('blocked');
    expect(Number(shared.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(shared.headers.get('retry-after'))).toBeLessThanOrEqual(2);
    expect((await limits(two)).blocks).toEqual([{ rule: 'user', blocked: true, level: 1, retry_after: expect.any(Number), strikes: 0 }]);

    // Once it is over the flooder is still over the limit (1 per 30 s): refused, then blocked again, longer.
    expect(await afterTheBlock(two, 5_000)).toMatchObject({ status: 429, body: { error: 'rate_limited' } });
    const longer = await send(one);
    expect(longer.body).toEqual({ error: 'blocked', reply: 'Blocked for 6 seconds. Back in 6 seconds.', retry_after: 6 });
    expect(longer.headers.get('retry-after')).toBe('6');
    expect((await limits(one)).blocks).toEqual([{ rule: 'user', blocked: true, level: 2, retry_after: expect.any(Number), strikes: 0 }]);
    expect((await send(two)).body.error).toBe('blocked');

    // One reset, on one gateway, and the other admits the flooder at once: the block and the count are gone.
    const reset = await postRaw(one.url, '/v1/admin/limits/reset', JSON.stringify({ user_id: FLOODER }), auth);
    expect(reset.status).toBe(200);
    expect(reset.body).toEqual({ reset: true, keys_removed: 2 });
    expect((await send(two)).status).toBe(200);
    expect((await limits(one)).blocks).toEqual([{ rule: 'user', blocked: false, level: 0, retry_after: 0, strikes: 0 }]);

    // Each gateway counted the blocks its requests started; the blocked answers it gave.
    const [first, second] = await Promise.all([metricsOf(one), metricsOf(two)]);
    expect(first).toContain('floodgate_ratelimit_blocks_started_total{rule="user",level="1"} 1');
    expect(first).toContain('floodgate_ratelimit_blocks_started_total{rule="user",level="2"} 1');
    expect(second).not.toContain('floodgate_ratelimit_blocks_started_total{');
    const blockedAnswers = second.match(/^floodgate_ratelimit_decisions_total\{hook="prePromptFetch",outcome="blocked",rule="user"\} (\d+)$/m);
    expect(Number(blockedAnswers?.[1])).toBeGreaterThanOrEqual(2);
    expectNoFallback([one, two]);

    await Promise.all([one.stop(), two.stop()]);
    for (const g of [one, two]) {
      const logText = g.stdout.join('\n').toLowerCase();
      expect(logText).not.toContain('repeat.flooder');
    }
    // The first block is logged; the second, within 10 s of it, is only counted (a log line per key every 10 s at most).
    expect(logLines(one, 'kept sending while refused; blocked')).toEqual([expect.objectContaining({ rule: 'user', level: 1, block_s: 2 })]);
  });

  it('tells a Telegram flooder once per block, then stays silent, whichever gateway the updates reach', async () => {
    const [one, two] = await startPair();
    const post = (gateway: RunningGateway, n: number) =>
      postRaw(gateway.url, '/telegram/webhook', JSON.stringify(telegramUpdate('supergroup-command', n)), { [TELEGRAM_SECRET_HEADER]: TELEGRAM_SECRET });

    const answers = [];
    for (let n = 0; n < 8; n++) answers.push(await post(n % 2 === 0 ? one : two, n));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(answers[0]!.body).toMatchObject({ method: 'sendMessage', chat_id: TELEGRAM_SUPERGROUP_ID, text: expect.stringContaining('Token buckets') });
    expect(answers[1]!.body).toMatchObject({ method: 'sendMessage', text: expect.stringMatching(/^You're sending messages a little too fast/) });
    // The block is told once, by the gateway whose update started it; every other update gets nothing.
    expect(answers[2]!.body).toMatchObject({ method: 'sendMessage', chat_id: TELEGRAM_SUPERGROUP_ID, text: 'Blocked for 2 seconds. Back in 2 seconds.' });
    expect(answers.slice(3).map((a) => a.body)).toEqual(Array(5).fill({}));
    expectNoFallback([one, two]);

    await Promise.all([one.stop(), two.stop()]);
    for (const text of [...answers.map((a) => a.raw), one.stdout.join('\n'), two.stdout.join('\n')]) {
      expect(text).not.toContain(String(TELEGRAM_FLOODER_ID));
    }
  });
});
