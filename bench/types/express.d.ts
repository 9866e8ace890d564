/** The part of express 5's API the end-to-end peer server uses (the package ships no types). */
declare module 'express' {
  import type { IncomingMessage, Server, ServerResponse } from 'node:http';

  export interface Request extends IncomingMessage {
    body: unknown;
    ip?: string;
  }
  export interface Response extends ServerResponse {
    status(code: number): this;
    json(body: unknown): this;
  }
  export type NextFunction = (error?: unknown) => void;
  export type RequestHandler = (request: Request, response: Response, next: NextFunction) => void;

  export interface Application {
    use(...handlers: RequestHandler[]): this;
    post(path: string, ...handlers: RequestHandler[]): this;
    listen(port: number, host: string, callback?: (error?: Error) => void): Server;
  }
  interface Express {
    (): Application;
    json(options?: { limit?: number | string }): RequestHandler;
  }
  const express: Express;
  export default express;
}
