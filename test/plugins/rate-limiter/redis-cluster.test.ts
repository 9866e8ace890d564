import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES } from '../../../plugins/rate-limiter/algorithms/types.ts';
import { RateLimiterOptions } from '../../../plugins/rate-limiter/options.ts';
import { Policy, type PolicyCheck } from '../../../plugins/rate-limiter/policy.ts';
import { createRedisClient } from '../../../plugins/rate-limiter/store/redis-client.ts';
import { RedisStore } from '../../../plugins/rate-limiter/store/redis.ts';
import { redisTestsEnabled, startRedisCluster, type RedisCluster } from '../../support/redis.ts';
import { hashTag, inspector, startPlugin, within } from './redis-helpers.ts';

const enabled = redisTestsEnabled();

describe.skipIf(!enabled)('RedisStore on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let prefixes = 0;

  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  beforeEach(async () => {
    client = createRedisClient({ cluster: seedList(), timeoutMs: 1_000 }) as Cluster;
    await within(client.connect(), 5_000, 'cluster connect()');
  });
  afterEach(async () => {
    await client.quit();
  });

  const seedList = () => cluster.seeds.map((s) => `${s.host}:${s.port}`);

  function harness(config: Record<string, unknown>) {
    const options = RateLimiterOptions.parse({ backend: 'redis', redis_cluster: ['127.0.0.1:1'], ...config });
    const prefix = `c${++prefixes}`;
    const store = new RedisStore({ client, algorithm: options.algorithm, prefix });
    return { policy: new Policy(options), store, prefix };
  }

  /** Which master holds each key (by its port), asked of the nodes themselves; each key is on exactly one. */
  async function ownerPorts(keys: string[]): Promise<Set<number>> {
    const owners = new Set<number>();
    const inspectors = cluster.nodes.map((node) => ({ port: node.port, client: inspector(node.url) }));
    try {
      for (const key of keys) {
        // A node that does not serve the key's slot answers MOVED.
        const found = await Promise.all(inspectors.map(({ client: node }) => node.exists(key).catch(() => 0)));
        expect(found.filter((n) => n === 1), key).toHaveLength(1);
        owners.add(inspectors[found.indexOf(1)]!.port);
      }
    } finally {
      await Promise.all(inspectors.map(({ client: node }) => node.quit()));
    }
    return owners;
  }

  it.each(ALGORITHM_NAMES)('%s: decides for 60 users in 20 tenants, keys spread over every master', async (algorithm) => {
    const { policy, store, prefix } = harness({ algorithm, by_user: '2/m', by_tenant: '100/m', by_tool: { search: '1/m' } });
    const subjects = Array.from({ length: 60 }, (_, i) => policy.subject('http', `user-${i}`, `tenant-${i % 20}`));
    // Everyone at once: three prompts each (the third refused by the user rule), and two tool calls
    // (the second refused by the tool rule).
    const prompts = await Promise.all(subjects.map((s) => Promise.all([0, 1, 2].map(() => store.decide(policy.forPrompt(s), 0)))));
    const tools = await Promise.all(subjects.map((s) => Promise.all([0, 1].map(() => store.decide(policy.forTool(s, 'search'), 0)))));
    for (const decisions of prompts) {
      expect(decisions.map((d) => d.allowed).sort()).toEqual([false, true, true]);
      const refused = decisions.find((d) => !d.allowed)!;
      // [user, tenant]: the user rule refuses, the tenant has room.
      expect(refused.results[0]!.retryAfterMs).toBeGreaterThan(0);
      expect(refused.results[1]!.retryAfterMs).toBe(0);
    }
    for (const decisions of tools) expect(decisions.map((d) => d.allowed).sort()).toEqual([false, true]);

    // The tenant rule saw all of its users' admitted calls (3 users x (2 prompts + 1 tool call)).
    const tenantOf = policy.forPrompt(subjects[0]!)[1]!;
    expect(tenantOf.rule.name).toBe('tenant');
    const standing = await store.decide([tenantOf], 0);
    expect(standing.results[0]!.remaining).toBe(100 - 9 - 1);

    // The keys live on every master, not just one: the slots really were spread.
    const keys = subjects.flatMap((s) => [...policy.forPrompt(s), ...policy.forTool(s, 'search')].map((c) => `${prefix}:${c.key}`));
    const slots = new Set(await Promise.all(subjects.map((s) => client.cluster('KEYSLOT', `${prefix}:${policy.forPrompt(s)[0]!.key}`))));
    expect(slots.size).toBeGreaterThan(10);
    expect(await ownerPorts(keys)).toEqual(new Set(cluster.nodes.map((n) => n.port)));
  });

  it('one request\'s user, tenant and tool keys share a slot; a refusal by one charges none of them', async () => {
    const { policy, store, prefix } = harness({ by_user: '5/m', by_tenant: '2/m', by_tool: { search: '5/m' } });
    const alice = policy.subject('http', 'alice', 'acme');
    const bob = policy.subject('telegram', 'bob', 'acme');
    const allRules = (s: ReturnType<Policy['subject']>): PolicyCheck[] => {
      const prompt = policy.forPrompt(s);
      const tool = policy.forTool(s, 'search');
      return [prompt[0]!, prompt[1]!, tool[1]!];
    };
    const aliceChecks = allRules(alice);
    const bobChecks = allRules(bob);
    expect(aliceChecks.map((c) => c.rule.name)).toEqual(['user', 'tenant', 'tool']);

    const keys = [...aliceChecks, ...bobChecks].map((c) => `${prefix}:${c.key}`);
    expect(new Set(keys.map(hashTag))).toEqual(new Set(['t:acme']));
    const slots = await Promise.all(keys.map((key) => client.cluster('KEYSLOT', key)));
    expect(new Set(slots).size).toBe(1);

    expect((await store.decide(aliceChecks, 0)).allowed).toBe(true);
    expect((await store.decide(aliceChecks, 0)).allowed).toBe(true);
    // The tenant's 2/m is used up: Alice and Bob are refused, and neither user nor tool rule is charged.
    for (let i = 0; i < 5; i++) {
      const refused = await store.decide(aliceChecks, 0);
      expect(refused.allowed).toBe(false);
      expect(refused.results.map((r) => r.remaining)).toEqual([3, 0, 3]);
      expect((await store.decide(bobChecks, 0)).results.map((r) => r.remaining)).toEqual([5, 0, 5]);
    }
    const bobUserKey = `${prefix}:${bobChecks[0]!.key}`;
    const bobToolKey = `${prefix}:${bobChecks[2]!.key}`;
    expect(await client.exists(bobUserKey)).toBe(0);
    expect(await client.exists(bobToolKey)).toBe(0);
    expect(await client.llen(`${prefix}:${aliceChecks[0]!.key}`)).toBe(2);
  });

  it.each(ALGORITHM_NAMES)('%s: 3N concurrent requests for one subject admit exactly N, for 12 subjects at once', async (algorithm) => {
    const N = 7;
    const { policy, store } = harness({ algorithm, by_user: `${N}/h`, by_tenant: '1000/h' });
    const subjects = Array.from({ length: 12 }, (_, i) => policy.subject('http', `flooder-${i}`, i % 2 === 0 ? `team-${i}` : undefined));
    const results = await Promise.all(
      subjects.map((s) => Promise.all(Array.from({ length: 3 * N }, () => store.decide(policy.forPrompt(s), 0)))),
    );
    for (const decisions of results) {
      expect(decisions).toHaveLength(3 * N);
      expect(decisions.filter((d) => d.allowed)).toHaveLength(N);
    }
  });

  it('routes each decision by its own keys when commands are auto-pipelined on a cluster', async () => {
    // ioredis batches auto-pipelined commands by the node of their first key; if the script's key count
    // came first, concurrent decisions for keys on different masters would share one batch, which
    // ioredis rejects as a whole.
    const pipelined = new Cluster(cluster.seeds, { enableAutoPipelining: true, enableOfflineQueue: true });
    pipelined.on('error', () => {});
    try {
      const store = new RedisStore({ client: pipelined, algorithm: 'sliding_window', prefix: 'ap' });
      const checks = Array.from({ length: 30 }, (_, i) => [{ key: `{http:user-${i}}u:`, rule: { limit: 2, windowMs: 60_000 } }]);
      const decisions = await Promise.all(checks.flatMap((c) => [c, c, c]).map((c) => store.decide(c, 0)));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(60);
      // The batch really did span all three masters.
      expect(await ownerPorts(checks.map(([c]) => `ap:${c!.key}`))).toEqual(new Set(cluster.nodes.map((n) => n.port)));
    } finally {
      await pipelined.quit();
    }
  });

  it('a client from createRedisClient always finishes connecting to the cluster (40 connects in a row)', async () => {
    // ioredis can orphan the promise of a cluster connect() whose ready check lands on a node still in
    // its handshake; the plugin awaits that promise at setup, so setup would never finish.
    for (let i = 0; i < 40; i++) {
      const fresh = createRedisClient({ cluster: seedList(), timeoutMs: 1_000 }) as Cluster;
      try {
        await within(fresh.connect(), 2_000, `connect #${i}`);
        expect(fresh.status).toBe('ready');
      } finally {
        await fresh.quit();
      }
    }
  });

  it('plugin setup with redis_cluster finishes (10 starts) and decides on the cluster', async () => {
    for (let i = 0; i < 10; i++) {
      const plugin = await within(
        startPlugin({ backend: 'redis', redis_cluster: seedList(), redis_key_prefix: `start${i}`, by_user: '2/m' }),
        5_000,
        `plugin setup #${i}`,
      );
      try {
        const decisions = [];
        for (let j = 0; j < 3; j++) decisions.push(await plugin.prompt('alice'));
        expect(decisions.map((d) => d.continue)).toEqual([true, true, false]);
        // The state is on the cluster, and Redis never looked down.
        expect(await client.exists(`start${i}:{http:alice}u:|60000`)).toBe(1);
        expect(plugin.log.raw.filter((line) => line.includes('redis backend'))).toEqual([]);
        expect(plugin.log.at('warn').map((e) => e.msg)).toEqual(['rate limit exceeded; request refused']);
      } finally {
        await plugin.teardown();
      }
    }
  });
});
