import type { IncomingHttpHeaders } from 'node:http';

/** Paths the HTTP channel serves itself; a mounted route may not take them. */
export const RESERVED_PATHS: readonly string[] = ['/v1/messages', '/healthz'];

/** Paths the gateway mounts for operators; webhooks may not take them either. */
export const OPERATOR_PATHS: readonly string[] = ['/metrics'];

/** Where plugins' admin routes live (behind the admin token); webhooks may not take paths under it. */
export const ADMIN_PREFIX = '/v1/admin/';

/**
 * What a route is for, as the checks every request goes through before its body is read see it:
 * `/v1/messages`, the chat platforms' webhooks, the admin API, `/metrics`, `/healthz`, and anything
 * else (unknown paths included).
 */
export const ROUTE_GROUPS = ['messages', 'webhooks', 'admin', 'metrics', 'health', 'other'] as const;
export type RouteGroup = (typeof ROUTE_GROUPS)[number];

/** The route groups whose routes check credentials: a 401 from one of them is a failed authentication. */
export const AUTHENTICATED_ROUTE_GROUPS: readonly RouteGroup[] = ['webhooks', 'admin'];

/** A request to a mounted route, its body already read (and held to `max_body_bytes`). */
export interface RouteRequest {
  headers: IncomingHttpHeaders;
  /** The raw bytes, as sent: signatures are computed over them. */
  body: Buffer;
  /** Aborts when the client goes away before the answer is written. */
  signal: AbortSignal;
  /** The query string's parameters. */
  query: URLSearchParams;
}

export interface RouteResponse {
  status: number;
  /** Sent as JSON; absent (and no `text`) means an empty body (e.g. 204). */
  body?: unknown;
  /** Sent as is, with `contentType` (for formats other than JSON, such as Prometheus metrics). */
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export type RouteHandler = (request: RouteRequest) => Promise<RouteResponse>;
