/** Workloads shared by the sections: users, the plugin's own keys and rules, quiet loggers. */
import { pino, type Logger } from 'pino';
import { ALGORITHM_NAMES, type AlgorithmName } from '../../plugins/rate-limiter/algorithms/types.ts';
import { RateLimiterOptions } from '../../plugins/rate-limiter/options.ts';
import { Policy, type PolicyCheck } from '../../plugins/rate-limiter/policy.ts';

export { ALGORITHM_NAMES, type AlgorithmName };

/** The rules every comparison uses: 30 per minute per user (and tool); a tenant of 10 users gets 300. */
export const USER_RATE = { text: '30/m', points: 30, seconds: 60 } as const;
export const TENANT_RATE = { text: '300/m', points: 300, seconds: 60 } as const;
export const TOOL = 'search';
export const USERS_PER_TENANT = 10;

/** A user id shaped like a real one (12 characters); distinct per index. */
export function userId(i: number): string {
  return `user-${String(i).padStart(7, '0')}`;
}

export function tenantId(i: number): string {
  return `tenant-${String(Math.floor(i / USERS_PER_TENANT)).padStart(6, '0')}`;
}

export function limiterOptions(algorithm: AlgorithmName, rules: 1 | 3, extra: Record<string, unknown> = {}): RateLimiterOptions {
  const config: Record<string, unknown> =
    rules === 1
      ? { by_user: USER_RATE.text }
      : { by_user: USER_RATE.text, by_tenant: TENANT_RATE.text, by_tool: { [TOOL]: USER_RATE.text } };
  return RateLimiterOptions.parse({ ...config, algorithm, ...extra });
}

/**
 * Each user's checks as the plugin's Policy builds them (same keys, same compiled rules): with one
 * rule, the user's; with three, user + tenant + tool, all under the tenant's hash tag.
 */
export function buildChecks(algorithm: AlgorithmName, rules: 1 | 3, users: number): (readonly PolicyCheck[])[] {
  const policy = new Policy(limiterOptions(algorithm, rules));
  const all: (readonly PolicyCheck[])[] = [];
  for (let i = 0; i < users; i++) {
    if (rules === 1) {
      all.push(policy.forPrompt(policy.subject('http', userId(i), undefined)));
    } else {
      const subject = policy.subject('http', userId(i), tenantId(i));
      const [user, tenant] = policy.forPrompt(subject);
      const [, tool] = policy.forTool(subject, TOOL);
      all.push([user!, tenant!, tool!]);
    }
  }
  // Keys are read once here, as a long-lived key would have been: flat strings with their hash.
  for (const checks of all) for (const check of checks) check.key.charCodeAt(0);
  return all;
}

/** A destination that drops every line (pino still formats it: the cost of logging stays in). */
export const nullDestination = { write(_line: string): void {} };

export function quietLogger(level: 'info' | 'warn' | 'silent' = 'info'): Logger {
  return pino({ level, base: { service: 'floodgate' } }, nullDestination);
}

/** A fresh copy of a string (not the interned original), as a channel parsing a request would have. */
export function fresh(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}
