import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InboundMessage, OutboundReply } from '../bus/messages.ts';
import type { HttpChannelConfig } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import { ABORTED } from '../util/abort.ts';
import { Channel, type ChannelDeps } from './channel.ts';
import { ReplyTimeout, TIMEOUT_REPLY } from './reply-timeout.ts';
import type { RequestGate } from './request-gate.ts';
import { refusalBeforeBody, RequestScreen, type CheckedRequest } from './request-screen.ts';
import { ADMIN_PREFIX, RESERVED_PATHS, type RouteGroup, type RouteHandler, type RouteResponse } from './routes.ts';
import { parseJsonBody, validateMessageRequest } from './wire.ts';

class BodyTooLarge extends Error {}

/** For an agent that failed outright (the gateway's answers its own failures itself). */
const INTERNAL_ERROR_REPLY = 'Sorry, something went wrong on our side. Please try again.';

interface Route {
  method: string;
  handler: RouteHandler;
  group: RouteGroup;
}

const CONTENT_TYPE = 'content-type';
const CACHE_CONTROL = 'cache-control';
const CONTENT_LENGTH = 'content-length';
const JSON_HEADERS = { [CONTENT_TYPE]: 'application/json; charset=utf-8', [CACHE_CONTROL]: 'no-store' };

/** Header names as Node keys them (lower case), for the few names plugins send; bounded. */
const lowerNames = new Map<string, string>();

function lowerName(name: string): string {
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    if (lowerNames.size >= 1024) lowerNames.clear();
    lower = name.toLowerCase();
    lowerNames.set(name, lower);
  }
  return lower;
}

/**
 * A reply's headers as writeHead's flat list, or undefined when two of them (or one of them and one
 * of ours) are the same header in another case: setHeader() keeps the last of those, a list would
 * send both.
 */
function headerList(names: readonly string[], headers: Record<string, string>): (string | number)[] | undefined {
  const list: (string | number)[] = [];
  const lowers: string[] = [];
  for (const name of names) {
    const lower = lowerName(name);
    if (lower === CONTENT_TYPE || lower === CACHE_CONTROL || lower === CONTENT_LENGTH || lowers.includes(lower)) return undefined;
    lowers.push(lower);
    list.push(name, headers[name]!);
  }
  return list;
}

/** A refusal's headers with `Retry-After` from its retry time, unless the plugin set one itself. */
function withRetryAfter(reply: OutboundReply): Record<string, string> {
  if (reply.retryAfter === undefined) return reply.headers;
  for (const name in reply.headers) if (lowerName(name) === 'retry-after') return reply.headers;
  return { ...reply.headers, 'Retry-After': String(reply.retryAfter) };
}

/** A controller that aborts when the response closes: finished, or the client went away. */
function closedController(res: ServerResponse): AbortController {
  const controller = new AbortController();
  // 'close' comes once per response. A bound function and a ready-made reason: this runs per request.
  res.on('close', controller.abort.bind(controller, ABORTED));
  return controller;
}

/**
 * `POST /v1/messages` and `GET /healthz`, plus the routes other channels mount on the same server
 * (the chat platforms' webhooks). A request/response channel: every message gets an answer,
 * including every refused one (silent refusals still answer 429 here).
 */
export class HttpChannel extends Channel {
  readonly name = 'http';
  private server: Server | undefined;
  private readonly replies: ReplyTimeout;
  private readonly routes = new Map<string, Route>();
  private readonly screen: RequestScreen;

  constructor(
    deps: ChannelDeps,
    private readonly config: HttpChannelConfig,
    /** Asked about every request before its body is read; none: every request is served. */
    gate?: RequestGate,
  ) {
    super(deps);
    this.replies = new ReplyTimeout(config.reply_timeout_ms);
    this.screen = new RequestScreen(gate, config, this.logger);
  }

  /** How long a request/response channel on this server waits for a reply. */
  get replyTimeoutMs(): number {
    return this.config.reply_timeout_ms;
  }

  /**
   * Serves `handler` at exactly `path` (query strings ignored) for `method`; other methods get 405.
   * The body is read and limited as for `/v1/messages` (413 past `max_body_bytes`) before the handler
   * runs; a handler that throws gets a 500, never a crash. `group` is what the request checks see
   * it as; a 401 answer counts as a failed authentication.
   */
  mount(method: string, path: string, handler: RouteHandler, group: RouteGroup = 'other'): void {
    if (!path.startsWith('/')) throw new Error(`route path must start with "/": ${path}`);
    if (RESERVED_PATHS.includes(path) || this.routes.has(path)) throw new Error(`route ${path} is already taken`);
    this.routes.set(path, { method: method.toUpperCase(), handler, group });
  }

  /** Stops serving a mounted route (its owner went away); requests already in its handler finish. */
  unmount(path: string): void {
    this.routes.delete(path);
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    // A client that asks before it sends its body is told to go on only once the request is admitted
    // (withBody): a refused one never sends it.
    server.on('checkContinue', (req, res) => this.handle(req, res));
    // Slow or stalled clients must not hold sockets forever.
    server.requestTimeout = 15_000;
    server.headersTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolvePromise, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolvePromise();
      });
    });
    this.logger.info({ host: this.config.host, port: this.port }, 'http channel listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
    server.closeIdleConnections();
    // Messages already on their way get their replies; close() waits for their responses.
    const deadline = setTimeout(() => server.closeAllConnections(), 5_000);
    await closed;
    clearTimeout(deadline);
    this.replies.clear();
  }

  /** Messages waiting for the agent's answer. */
  get waiting(): number {
    return this.replies.waiting;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (this.screen.checking) return this.checkFirst(req, res, path);
    this.serve(req, res, path, undefined);
  }

  private routeGroup(path: string): RouteGroup {
    if (path === '/v1/messages') return 'messages';
    if (path === '/healthz') return 'health';
    return this.routes.get(path)?.group ?? (path.startsWith(ADMIN_PREFIX) ? 'admin' : 'other');
  }

  /** The gate's say first: a refused request is answered before its body is read. */
  private checkFirst(req: IncomingMessage, res: ServerResponse, path: string): void {
    this.screen.check(
      this.screen.facts(req, path, this.routeGroup(path)),
      (checked) => this.serve(req, res, path, checked),
      (violation) => this.respond(res, refusalBeforeBody(req, violation, this.name)),
    );
  }

  /** Routes the request (checked by the gate, if there is one that checks). */
  private serve(req: IncomingMessage, res: ServerResponse, path: string, checked: CheckedRequest | undefined): void {
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, 'GET');
      return this.json(res, 200, { status: 'ok' });
    }
    if (path === '/v1/messages') {
      if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST');
      return this.withBody(req, res, (body) => this.acceptMessage(body, res));
    }
    const route = this.routes.get(path);
    if (route) {
      if (req.method !== route.method) return this.methodNotAllowed(res, route.method);
      return this.withBody(req, res, (body) => this.serveRoute(route, path, req, res, body, checked));
    }
    this.json(res, 404, { error: 'not_found', message: `no route for ${path}` });
  }

  /** Reads the body within `max_body_bytes` (413 past it), then hands it on. */
  private withBody(req: IncomingMessage, res: ServerResponse, next: (body: Buffer) => void): void {
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    this.readBody(req).then(next, (error: unknown) => {
      if (error instanceof BodyTooLarge) {
        this.json(res, 413, { error: 'payload_too_large', message: `body exceeds ${this.config.max_body_bytes} bytes` });
        req.resume();
      } else {
        // The client went away mid-body; there is nobody to answer.
        res.destroy();
      }
    });
  }

  private serveRoute(route: Route, path: string, req: IncomingMessage, res: ServerResponse, body: Buffer, checked: CheckedRequest | undefined): void {
    let answer: Promise<RouteResponse>;
    try {
      const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      answer = route.handler({ headers: req.headers, body, signal: closedController(res).signal, query });
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (response) =>
        response.status === 401 && this.screen.hearsAuthFailures
          ? this.screen.authFailed(() => this.screen.facts(req, path, route.group), checked, () => this.writeRoute(res, response))
          : this.writeRoute(res, response),
      (error: unknown) => {
        this.logger.error({ path, err_message: errorMessage(error) }, 'route handler failed');
        this.json(res, 500, { error: 'internal_error', message: 'the request could not be handled' });
      },
    );
  }

  private writeRoute(res: ServerResponse, response: RouteResponse): void {
    if (res.writableEnded || res.destroyed) return;
    for (const [name, value] of Object.entries(response.headers ?? {})) res.setHeader(name, value);
    if (response.body !== undefined) return this.json(res, response.status, response.body);
    if (response.text !== undefined) {
      res.writeHead(response.status, {
        'content-type': response.contentType ?? 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(response.text),
        'cache-control': 'no-store',
      });
      res.end(response.text);
      return;
    }
    res.writeHead(response.status, { 'cache-control': 'no-store' });
    res.end();
  }

  private acceptMessage(body: Buffer, res: ServerResponse): void {
    const parsed = parseJsonBody(body);
    if (!parsed.ok) return this.json(res, 400, { error: 'bad_request', message: 'body is not valid JSON' });
    const checked = validateMessageRequest(parsed.value);
    if (!checked.ok) {
      return this.json(res, 400, { error: 'bad_request', message: checked.problems.join('; ') });
    }
    const { user_id, tenant_id, conversation_id, text } = checked.value;
    void this.answerMessage(this.compose({ userId: user_id, tenantId: tenant_id, conversationId: conversation_id, text }), res);
  }

  /** Asks the agent and answers with its reply, or 504 when it has not come within reply_timeout_ms. */
  private async answerMessage(message: InboundMessage, res: ServerResponse): Promise<void> {
    // The agent's signal: aborts when the client leaves (which also ends the wait, so nothing waits on a
    // dead socket), when the timeout gives up on the answer, and in any case once the response is sent.
    const controller = closedController(res);
    let reply: OutboundReply | undefined;
    try {
      reply = await this.replies.ask(this.agent, message, controller);
    } catch (error) {
      this.logger.error({ err_message: errorMessage(error) }, 'message handling failed');
      return this.json(res, 500, { error: 'internal_error', reply: INTERNAL_ERROR_REPLY });
    }
    if (reply === undefined) return this.json(res, 504, { error: 'timeout', reply: TIMEOUT_REPLY });
    this.respond(res, reply);
  }

  private respond(res: ServerResponse, reply: OutboundReply): void {
    if (res.writableEnded || res.destroyed) return;
    let status: number;
    let body: unknown;
    if (reply.kind === 'answer') {
      status = 200;
      body = { reply: reply.text, conversation_id: reply.conversationId };
    } else {
      status = reply.status;
      body = reply.retryAfter === undefined ? { error: reply.code ?? 'error', reply: reply.text } : { error: reply.code ?? 'error', reply: reply.text, retry_after: reply.retryAfter };
    }
    const payload = JSON.stringify(body);
    const headers = withRetryAfter(reply);
    const names = Object.keys(headers);
    // The plugins' headers and ours in one writeHead: Node then checks each once, where setHeader()
    // would also lower-case each name and keep it in a table of its own (most of what plugins' headers
    // cost a request). Only when no two names could stand for the same header; a header Node
    // refuses makes writeHead throw before anything is sent, and the header-by-header way below then
    // drops it and keeps the rest.
    const together = headerList(names, headers);
    if (together !== undefined) {
      together.push(CONTENT_TYPE, JSON_HEADERS[CONTENT_TYPE], CACHE_CONTROL, JSON_HEADERS[CACHE_CONTROL], CONTENT_LENGTH, Buffer.byteLength(payload));
      let written = false;
      try {
        res.writeHead(status, together);
        written = true;
      } catch {
        // Named and dropped below.
      }
      if (written) {
        res.end(payload);
        return;
      }
    }
    for (const name of names) {
      // A malformed header from a plugin must not crash the process nor cost the client its answer.
      try {
        res.setHeader(name, headers[name]!);
      } catch (error) {
        this.logger.warn({ header: name, err_message: errorMessage(error) }, 'invalid reply header dropped');
      }
    }
    this.writeJson(res, status, payload);
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.config.max_body_bytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
    return new Promise((resolvePromise, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.removeAllListeners('data');
          reject(new BodyTooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolvePromise(Buffer.concat(chunks)));
      req.on('error', reject);
      req.on('aborted', () => reject(new Error('aborted')));
    });
  }

  private methodNotAllowed(res: ServerResponse, allow: string): void {
    res.setHeader('allow', allow);
    this.json(res, 405, { error: 'method_not_allowed', message: `use ${allow}` });
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    // The client may have gone while its answer was being prepared.
    if (res.writableEnded || res.destroyed) return;
    this.writeJson(res, status, JSON.stringify(body));
  }

  private writeJson(res: ServerResponse, status: number, payload: string): void {
    res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  }
}
