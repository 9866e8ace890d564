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

/** A refused message: the refusal's code, the reply for the user, and the wait when it is known. */
export const RefusedResponse = Type.Object(
  { error: Type.String(), reply: Type.String(), retry_after: Type.Optional(Type.Integer({ minimum: 0 })) },
  { $id: 'RefusedResponse' },
);

export const ErrorResponse = Type.Object(
  { error: Type.String(), reply: Type.Optional(Type.String()), message: Type.Optional(Type.String()) },
  { $id: 'ErrorResponse' },
);

/** `/data/options/0/value` → `data.options[0].value`. */
function fieldName(path: string): string {
  if (path === '') return 'body';
  return path
    .slice(1)
    .split('/')
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
}

/** What is wrong with a field, in words; never the value itself (it may be an id). */
function describeError(type: ValueErrorType, schema: TSchema): string {
  switch (type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'required field is missing';
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown field';
    case ValueErrorType.String:
      return 'expected a string';
    case ValueErrorType.Integer:
      return 'expected a whole number';
    case ValueErrorType.Number:
      return 'expected a number';
    case ValueErrorType.Array:
      return 'expected a list';
    case ValueErrorType.Object:
      return 'expected a JSON object';
    case ValueErrorType.StringMaxLength:
      return `must be at most ${schema.maxLength} characters`;
    case ValueErrorType.StringMinLength:
      return 'must not be empty';
    case ValueErrorType.StringPattern:
      return schema.description ?? 'has the wrong format';
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerMinimum:
      return 'is out of range';
    case ValueErrorType.ArrayMaxItems:
      return `must have at most ${schema.maxItems} items`;
    default:
      return 'has the wrong shape';
  }
}

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/**
 * Compiles a TypeBox schema into a checker for parsed request bodies: the value, or one line per
 * offending field (`user_id: required field is missing`) that names the field and never echoes a value.
 */
export function compileValidator<S extends TSchema>(schema: S): (body: unknown) => Validated<Static<S>> {
  const check = TypeCompiler.Compile(schema);
  return (body) => {
    if (check.Check(body)) return { ok: true, value: body };
    // First problem per field: "missing" beats the "not a string" that follows it.
    const problems = new Map<string, string>();
    for (const error of check.Errors(body)) {
      const field = fieldName(error.path);
      if (!problems.has(field)) problems.set(field, `${field}: ${describeError(error.type, error.schema)}`);
    }
    return { ok: false, problems: [...problems.values()] };
  };
}

/** Checks a parsed body; returns the request or one line per offending field. */
export const validateMessageRequest: (body: unknown) => Validated<MessageRequest> = compileValidator(MessageRequest);

/** The body parsed as JSON, or `ok: false` when it is not JSON at all. */
export function parseJsonBody(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}
