import { createLogger, type Logger } from '../../../src/logger.ts';

export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

export interface CapturedLogs {
  logger: Logger;
  /** Every line written so far, parsed. */
  records(): LogRecord[];
  /** Records whose `msg` equals `msg`. */
  withMessage(msg: string): LogRecord[];
}

/** A real pino logger (with the production redaction rules) writing JSON lines to memory. */
export function captureLogs(level: 'trace' | 'debug' | 'info' = 'trace'): CapturedLogs {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (line: string) => void lines.push(line) } });
  const records = (): LogRecord[] =>
    lines.flatMap((chunk) => chunk.split('\n').filter((l) => l.trim() !== '')).map((l) => JSON.parse(l) as LogRecord);
  return { logger, records, withMessage: (msg) => records().filter((r) => r.msg === msg) };
}

/** pino's numeric levels. */
export const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
