import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';

const ID_MAX = 256;

/** Body of `POST /v1/messages`. */
export const MessageRequest = Type.Object(
  {
    user_id: Type.String({ maxLength: ID_MAX }),
    tenant_id: Type.Optional(Type.String({ maxLength: ID_MAX })),
    conversation_id: Type.Optional(Type.String({ minLength: 1, maxLength: ID_MAX })),
    text: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false, $id: 'MessageRequest' },
);
export type MessageRequest = Static<typeof MessageRequest>;

export const MessageResponse = Type.Object(
  { reply: Type.String(), conversation_id: Type.String() },
  { $id: 'MessageResponse' },
);

export const RateLimitedResponse = Type.Object(
  { error: Type.Literal('rate_limited'), reply: Type.String(), retry_after: Type.Integer({ minimum: 0 }) },
  { $id: 'RateLimitedResponse' },
);

export const ErrorResponse = Type.Object(
  { error: Type.String(), reply: Type.Optional(Type.String()), message: Type.Optional(Type.String()) },
  { $id: 'ErrorResponse' },
);

const checkMessageRequest = TypeCompiler.Compile(MessageRequest);

function fieldName(path: string): string {
  return path === '' ? 'body' : path.slice(1).replaceAll('/', '.');
}

function describeError(type: ValueErrorType, schema: TSchema): string {
  switch (type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'required field is missing';
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown field';
    case ValueErrorType.String:
      return 'expected a string';
    case ValueErrorType.Object:
      return 'expected a JSON object';
    case ValueErrorType.StringMaxLength:
      return `must be at most ${schema.maxLength} characters`;
    case ValueErrorType.StringMinLength:
      return 'must not be empty';
    default:
      return 'has the wrong shape';
  }
}

/** Checks a parsed body; returns the request or one line per offending field. */
export function validateMessageRequest(
  body: unknown,
): { ok: true; value: MessageRequest } | { ok: false; problems: string[] } {
  if (checkMessageRequest.Check(body)) return { ok: true, value: body };
  // First problem per field: "missing" beats the "not a string" that follows it.
  const problems = new Map<string, string>();
  for (const error of checkMessageRequest.Errors(body)) {
    const field = fieldName(error.path);
    if (!problems.has(field)) problems.set(field, `${field}: ${describeError(error.type, error.schema)}`);
  }
  return { ok: false, problems: [...problems.values()] };
}
