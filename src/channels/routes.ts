import type { IncomingHttpHeaders } from 'node:http';

/** Paths the HTTP channel serves itself; a mounted route may not take them. */
export const RESERVED_PATHS: readonly string[] = ['/v1/messages', '/healthz'];

/** A request to a mounted route, its body already read (and held to `max_body_bytes`). */
export interface RouteRequest {
  headers: IncomingHttpHeaders;
  /** The raw bytes, as sent: signatures are computed over them. */
  body: Buffer;
  /** Aborts when the client goes away before the answer is written. */
  signal: AbortSignal;
}

export interface RouteResponse {
  status: number;
  /** Sent as JSON; absent means an empty body (e.g. 204). */
  body?: unknown;
}

export type RouteHandler = (request: RouteRequest) => Promise<RouteResponse>;
