/**
 * A peer of the gateway for the end-to-end section: `node --import tsx bench/peer-server.ts <params as
 * JSON>` serves POST /v1/messages with fastify 5 or express 5, with or without its usual rate limiter
 * (@fastify/rate-limit, express-rate-limit; in-memory stores), keyed per user as Floodgate's is: by the
 * JSON body's `user_id`. It answers as Floodgate's echo does (`{"reply": "You said: ...",
 * "conversation_id": ...}`, 400 on a body without a user_id and text) and prints `{"port": N}` on
 * stdout once it listens on 127.0.0.1.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type PeerFramework = 'fastify' | 'express';

export interface PeerParams {
  framework: PeerFramework;
  limiter: boolean;
  /** The limit per user: `points` requests per `seconds`. */
  points: number;
  seconds: number;
  /** Users the limiter's store holds (fastify's is an LRU of this size; express's holds a window's). */
  maxKeys: number;
}

interface MessageBody {
  user_id?: unknown;
  text?: unknown;
  conversation_id?: unknown;
}

/** The echo's reply, or undefined for a body that is not a message. */
function answer(body: unknown): { reply: string; conversation_id: string } | undefined {
  const { user_id, text, conversation_id } = (body ?? {}) as MessageBody;
  if (typeof user_id !== 'string' || typeof text !== 'string') return undefined;
  return { reply: `You said: ${text}`, conversation_id: typeof conversation_id === 'string' ? conversation_id : randomUUID() };
}

const userOf = (body: unknown): string => {
  const id = (body as MessageBody | undefined)?.user_id;
  return typeof id === 'string' ? id : '';
};

const BAD_REQUEST = { error: 'bad_request', message: 'user_id and text are required' };

async function fastifyServer(params: PeerParams): Promise<number> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  if (params.limiter) {
    const { default: rateLimit } = await import('@fastify/rate-limit');
    await app.register(rateLimit, {
      max: params.points,
      timeWindow: params.seconds * 1000,
      cache: params.maxKeys,
      // After the body is parsed (the default, onRequest, runs before it): the key is in the body.
      hook: 'preHandler',
      keyGenerator: (request) => userOf(request.body),
    });
  }
  app.post('/v1/messages', async (request, reply) => {
    const body = answer(request.body);
    if (body === undefined) return reply.code(400).send(BAD_REQUEST);
    return body;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as AddressInfo).port;
}

async function expressServer(params: PeerParams): Promise<number> {
  const { default: express } = await import('express');
  const app = express();
  app.use(express.json());
  if (params.limiter) {
    const { rateLimit } = await import('express-rate-limit');
    app.use(rateLimit({ windowMs: params.seconds * 1000, limit: params.points, keyGenerator: (request) => userOf(request.body) }));
  }
  app.post('/v1/messages', (request, response) => {
    const body = answer(request.body);
    if (body === undefined) response.status(400).json(BAD_REQUEST);
    else response.json(body);
  });
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1', (error) => (error ? reject(error) : resolve((server.address() as AddressInfo).port)));
  });
}

const params = JSON.parse(process.argv[2] ?? '{}') as PeerParams;
const port = await (params.framework === 'fastify' ? fastifyServer(params) : expressServer(params));
process.stdout.write(`${JSON.stringify({ port })}\n`);
