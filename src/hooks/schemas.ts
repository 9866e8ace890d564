import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ROUTE_GROUPS } from '../channels/routes.ts';

/** Who and where a step runs for; the same for every hook of one message. */
export const HookContext = Type.Object(
  {
    message_id: Type.String(),
    channel: Type.String(),
    user_id: Type.String(),
    tenant_id: Type.Optional(Type.String()),
    conversation_id: Type.String(),
  },
  { $id: 'HookContext' },
);
export type HookContext = Static<typeof HookContext>;

const TokenCount = Type.Integer({ minimum: 0, maximum: 1e12 });

export const PrePromptFetchPayload = Type.Object(
  {
    prompt_id: Type.String(),
    text: Type.String(),
    /** The orchestrator's estimate of the tokens the call will use (prompt and answer). */
    estimated_tokens: Type.Optional(TokenCount),
    context: HookContext,
  },
  { $id: 'PrePromptFetchPayload' },
);

/** How a prompt fetch that its prePromptFetch hooks admitted ended. */
export const PROMPT_OUTCOMES = ['completed', 'failed', 'cancelled'] as const;

/**
 * After a prompt fetch that prePromptFetch admitted: what it really cost. `cancelled` without
 * `actual_tokens` means it never ran (nothing it reserved should count).
 */
export const PostPromptFetchPayload = Type.Object(
  {
    prompt_id: Type.String(),
    outcome: Type.Union(PROMPT_OUTCOMES.map((o) => Type.Literal(o))),
    actual_tokens: Type.Optional(TokenCount),
    context: HookContext,
  },
  { $id: 'PostPromptFetchPayload' },
);

export const PreToolInvokePayload = Type.Object(
  {
    tool: Type.String(),
    args: Type.Record(Type.String(), Type.Unknown()),
    context: HookContext,
  },
  { $id: 'PreToolInvokePayload' },
);

/** What the HTTP server knows of a request before it reads the body. */
function requestPayload(id: string) {
  return Type.Object(
    {
      /** The client's address (canonical; behind trusted proxies, the one they name); absent when the connection has none. */
      address: Type.Optional(Type.String()),
      route_group: Type.Union(ROUTE_GROUPS.map((group) => Type.Literal(group))),
      method: Type.String(),
      /** Without the query string. */
      path: Type.String(),
    },
    { $id: id },
  );
}

/** Before the HTTP server reads a request's body: a violation answers it at once (nothing else is done). */
export const PreRequestPayload = requestPayload('PreRequestPayload');

/**
 * A request failed authentication (a route answered 401: a wrong admin token, a bad webhook signature
 * or secret). Its handlers get the same call object as the request's preRequest handlers did: one
 * made for that request alone, on which a preRequest handler may leave (under a Symbol of its own)
 * what its authFailed handler will need.
 */
export const AuthFailedPayload = requestPayload('AuthFailedPayload');

/**
 * The closed list of hooks. Registering a name that is not here is an error; adding a hook means
 * adding its payload schema here.
 */
export const HOOK_PAYLOADS = {
  prePromptFetch: PrePromptFetchPayload,
  postPromptFetch: PostPromptFetchPayload,
  preToolInvoke: PreToolInvokePayload,
  preRequest: PreRequestPayload,
  authFailed: AuthFailedPayload,
} satisfies Record<string, TSchema>;

export type HookName = keyof typeof HOOK_PAYLOADS;
export type HookPayload<N extends HookName> = Static<(typeof HOOK_PAYLOADS)[N]>;
export const HOOK_NAMES = Object.keys(HOOK_PAYLOADS) as HookName[];

export function isHookName(name: string): name is HookName {
  return Object.hasOwn(HOOK_PAYLOADS, name);
}

const Headers = Type.Record(Type.String(), Type.String());

/**
 * A plugin's refusal of a step, in fields every channel reads the same way. `description` is what the
 * user is told; it never names the user.
 */
export const Violation = Type.Object(
  {
    /** Machine-readable, e.g. `too_fast`: the `error` of an HTTP answer. */
    code: Type.String({ minLength: 1 }),
    /** For operators (logs); never shown to the user. */
    reason: Type.String(),
    description: Type.String(),
    httpStatus: Type.Integer({ minimum: 400, maximum: 599 }),
    /** Whole seconds until the step would be admitted: `Retry-After` and the body's `retry_after`. */
    retryAfter: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Extra headers for request/response channels. */
    headers: Headers,
    /** What the refusing plugin wants operators and clients to know (rule, window, ...). */
    details: Type.Record(Type.String(), Type.Unknown()),
    /** Chat channels post nothing (the user has been told already); request/response channels still answer. */
    silent: Type.Optional(Type.Boolean()),
  },
  { $id: 'Violation' },
);
export type Violation = Static<typeof Violation>;

export const HookResult = Type.Union(
  [
    Type.Object({ continue: Type.Literal(true), headers: Type.Optional(Headers) }),
    Type.Object({ continue: Type.Literal(false), violation: Violation }),
  ],
  { $id: 'HookResult' },
);
export type HookResult = Static<typeof HookResult>;

export const CONTINUE: HookResult = Object.freeze({ continue: true }) as HookResult;
