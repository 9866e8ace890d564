import { request } from 'node:http';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON (throws if it is not JSON). */
  json(): unknown;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | number>;
  /** Written in this many pieces, each a separate write (a body with no content-length goes chunked). */
  body?: string | string[];
}

/** One HTTP request with node:http (no keep-alive), resolved with the whole response. */
export function httpRequest(port: number, options: RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
        });
        res.on('error', reject);
      },
    );
    // A server that answers before reading the whole body may close the socket while we still write;
    // once the response is in, that is not a failure.
    req.on('error', reject);
    const parts = options.body === undefined ? [] : Array.isArray(options.body) ? options.body : [options.body];
    for (const part of parts) req.write(part);
    req.end();
  });
}

/** POSTs a JSON body to /v1/messages. */
export function postMessage(port: number, body: unknown): Promise<HttpResult> {
  const text = JSON.stringify(body);
  return httpRequest(port, {
    method: 'POST',
    path: '/v1/messages',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    body: text,
  });
}
