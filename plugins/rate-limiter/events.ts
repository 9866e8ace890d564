/**
 * What the rate limiter tells the rest of the gateway (metrics, audit, alerting). Events carry rule
 * names, hooks and outcomes, never a user or tenant id.
 */
export interface RateLimitDecisionEvent {
  hook: string;
  channel: string;
  /** `shadow_refused`: a shadow rule would have refused; the request went on. */
  outcome: 'admitted' | 'refused' | 'unavailable' | 'shadow_refused' | 'blocked';
  /** The rule that decided (the refusing one, or the one with fewest left); absent for blind decisions. */
  rule?: string;
  /** Seconds the client is told to wait, on refusals. */
  retry_after?: number;
  /** How long the store took to decide. */
  latency_ms: number;
}

export interface RateLimitBreakerEvent {
  state: 'closed' | 'open' | 'half_open';
  previous: 'closed' | 'open' | 'half_open';
}

export interface RateLimitBackendErrorEvent {
  /** The backend's error message (never carries keys). */
  message: string;
}

/** A prompt fetch's end settled what it reserved: the actual token count, or everything given back. */
export interface RateLimitSettledEvent {
  outcome: 'committed' | 'refunded';
}

/** A subject was blocked for sending while refused: which rules' subject, the block's level and length. */
export interface RateLimitBlockStartedEvent {
  rule: string;
  level: number;
  duration_s: number;
}

/** The limiter's events on the gateway's bus. */
declare module '../../src/plugin-sdk.ts' {
  interface BusEvents {
    'ratelimit:settled': [event: RateLimitSettledEvent];
    'ratelimit:decision': [event: RateLimitDecisionEvent];
    'ratelimit:backend_error': [event: RateLimitBackendErrorEvent];
    'ratelimit:breaker': [event: RateLimitBreakerEvent];
    'ratelimit:block_started': [event: RateLimitBlockStartedEvent];
  }
}
