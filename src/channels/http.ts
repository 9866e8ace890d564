import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OutboundReply } from '../bus/messages.ts';
import type { HttpChannelConfig } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import { Channel, type ChannelDeps } from './channel.ts';
import { validateMessageRequest } from './wire.ts';

class BodyTooLarge extends Error {}

interface PendingReply {
  respond: (reply: OutboundReply) => void;
  timer: NodeJS.Timeout;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

/**
 * `POST /v1/messages` and `GET /healthz`. A request/response channel: every message gets an answer,
 * including every refused one (quiet replies still answer 429 here).
 */
export class HttpChannel extends Channel {
  readonly name = 'http';
  private server: Server | undefined;
  private readonly pending = new Map<string, PendingReply>();

  constructor(
    deps: ChannelDeps,
    private readonly config: HttpChannelConfig,
  ) {
    super(deps);
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
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
    for (const pending of this.pending.values()) clearTimeout(pending.timer);
    this.pending.clear();
  }

  send(reply: OutboundReply): void {
    const pending = this.pending.get(reply.messageId);
    if (!pending) return; // The client gave up (timeout) before the reply came.
    this.pending.delete(reply.messageId);
    clearTimeout(pending.timer);
    pending.respond(reply);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.methodNotAllowed(res, 'GET');
      return this.json(res, 200, { status: 'ok' });
    }
    if (path === '/v1/messages') {
      if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST');
      this.readBody(req).then(
        (body) => this.acceptMessage(body, res),
        (error: unknown) => {
          if (error instanceof BodyTooLarge) {
            this.json(res, 413, { error: 'payload_too_large', message: `body exceeds ${this.config.max_body_bytes} bytes` });
            req.resume();
          } else {
            // The client went away mid-body; there is nobody to answer.
            res.destroy();
          }
        },
      );
      return;
    }
    this.json(res, 404, { error: 'not_found', message: `no route for ${path}` });
  }

  private acceptMessage(body: Buffer, res: ServerResponse): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return this.json(res, 400, { error: 'bad_request', message: 'body is not valid JSON' });
    }
    const checked = validateMessageRequest(parsed);
    if (!checked.ok) {
      return this.json(res, 400, { error: 'bad_request', message: checked.problems.join('; ') });
    }
    const { user_id, tenant_id, conversation_id, text } = checked.value;
    const message = this.compose({ userId: user_id, tenantId: tenant_id, conversationId: conversation_id, text });
    // Wait for the reply before publishing: the agent may answer before publish returns.
    const timer = setTimeout(() => {
      if (!this.pending.delete(message.id)) return;
      this.json(res, 504, { error: 'timeout', reply: 'Sorry, that took too long. Please try again.' });
    }, this.config.reply_timeout_ms);
    this.pending.set(message.id, { respond: (reply) => this.respond(res, reply), timer });
    res.on('close', () => {
      // The client left before the reply: forget it, so nothing waits on a dead socket.
      const pending = this.pending.get(message.id);
      if (pending) {
        clearTimeout(pending.timer);
        this.pending.delete(message.id);
      }
    });
    this.publish(message);
  }

  private respond(res: ServerResponse, reply: OutboundReply): void {
    if (res.writableEnded || res.destroyed) return;
    for (const [name, value] of Object.entries(reply.headers)) {
      // A malformed header from a plugin must not crash the process nor cost the client its answer.
      try {
        res.setHeader(name, value);
      } catch (error) {
        this.logger.warn({ header: name, err_message: errorMessage(error) }, 'invalid reply header dropped');
      }
    }
    if (reply.kind === 'answer') {
      return this.json(res, 200, { reply: reply.text, conversation_id: reply.conversationId });
    }
    if (reply.code === 'rate_limited') {
      return this.json(res, reply.status, { error: 'rate_limited', reply: reply.text, retry_after: reply.retryAfter ?? 0 });
    }
    this.json(res, reply.status, { error: reply.code ?? 'error', reply: reply.text });
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
    const payload = JSON.stringify(body);
    res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  }
}
