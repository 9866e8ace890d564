import { createHash, randomBytes } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Field names that may carry a user or tenant identifier. They are censored wherever they appear in a
 * log object, as a second line of defence: code logs identities only through {@link IdentityHasher}.
 */
const IDENTITY_FIELDS = ['user_id', 'tenant_id', 'userId', 'tenantId', 'user', 'tenant', 'key'];
const REDACT_PATHS = [...IDENTITY_FIELDS, ...IDENTITY_FIELDS.map((f) => `*.${f}`)];

export interface LoggerOptions {
  level?: LevelWithSilent;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'floodgate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/**
 * Turns an identity (a plugin's key, a user id) into a short salted hash that logs can carry: the
 * same user gives the same hash within one salt, so an operator can follow a flooder across log lines
 * without the log ever holding the id. Without a configured salt each process picks a random one.
 */
export class IdentityHasher {
  private readonly salt: string;
  constructor(salt?: string) {
    this.salt = salt ?? randomBytes(16).toString('hex');
  }
  hash(identity: string): string {
    return createHash('sha256').update(this.salt).update('\0').update(identity).digest('hex').slice(0, 16);
  }
}
