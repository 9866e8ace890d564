import { Type, type Static } from '@sinclair/typebox';
import { truncate } from '../util/truncate.ts';
import { compileValidator } from './wire.ts';

/** discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-interaction-type */
export const InteractionType = { Ping: 1, ApplicationCommand: 2, MessageComponent: 3, Autocomplete: 4, ModalSubmit: 5 } as const;
/** ...#interaction-response-object-interaction-callback-type */
export const CallbackType = { Pong: 1, ChannelMessageWithSource: 4, AutocompleteResult: 8 } as const;
/** Message flag EPHEMERAL (1 << 6): only the user who invoked the command sees the message. */
export const EPHEMERAL = 64;

/** Option types whose `options` are the next level down rather than a value. */
const SUB_COMMAND = 1;
const SUB_COMMAND_GROUP = 2;
/** Discord's limit on a message's content. */
const CONTENT_MAX = 2000;

/** Snowflake ids arrive as strings of digits. */
const Snowflake = Type.String({ pattern: '^[0-9]{1,20}$', description: 'expected a Discord id (a string of digits)' });
const OptionValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const OptionFields = { name: Type.String({ minLength: 1, maxLength: 32 }), type: Type.Integer(), value: Type.Optional(OptionValue) };
// Three explicit levels, as Discord nests them (group > sub-command > value): no recursion a body could exploit.
const ValueOption = Type.Object(OptionFields);
const SubCommandOption = Type.Object({ ...OptionFields, options: Type.Optional(Type.Array(ValueOption, { maxItems: 25 })) });
const GroupOption = Type.Object({ ...OptionFields, options: Type.Optional(Type.Array(SubCommandOption, { maxItems: 25 })) });

const AnyInteraction = Type.Object({ type: Type.Integer() });

/**
 * The part of an APPLICATION_COMMAND interaction this channel reads: the command (`data.name`,
 * `data.options`), who ran it (`member.user` in a server, `user` in a direct message), where
 * (`channel_id`, or `channel.id`) and in which server (`guild_id`). Everything else passes unchecked.
 */
export const ApplicationCommand = Type.Object({
  type: Type.Literal(InteractionType.ApplicationCommand),
  data: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 32 }),
    options: Type.Optional(Type.Array(GroupOption, { maxItems: 25 })),
  }),
  guild_id: Type.Optional(Snowflake),
  channel_id: Type.Optional(Snowflake),
  channel: Type.Optional(Type.Object({ id: Snowflake })),
  member: Type.Optional(Type.Object({ user: Type.Object({ id: Snowflake }) })),
  user: Type.Optional(Type.Object({ id: Snowflake })),
});
type ApplicationCommand = Static<typeof ApplicationCommand>;

const checkInteraction = compileValidator(AnyInteraction);
const checkCommand = compileValidator(ApplicationCommand);

export interface CommandMessage {
  userId: string;
  tenantId?: string;
  conversationId?: string;
  text: string;
}

export type ReadInteraction =
  | { kind: 'ping' }
  | { kind: 'autocomplete' }
  | { kind: 'command'; message: CommandMessage }
  | { kind: 'invalid'; problems: string[] };

/** What an interaction asks for, or what is wrong with it. */
export function readInteraction(body: unknown): ReadInteraction {
  const base = checkInteraction(body);
  if (!base.ok) return { kind: 'invalid', problems: base.problems };
  switch (base.value.type) {
    case InteractionType.Ping:
      return { kind: 'ping' };
    case InteractionType.Autocomplete:
      return { kind: 'autocomplete' };
    case InteractionType.ApplicationCommand:
      break;
    default:
      // Floodgate sends no buttons or modals, so components and modal submits have nothing to answer.
      return { kind: 'invalid', problems: [`type: interaction type ${base.value.type} is not handled`] };
  }
  const checked = checkCommand(body);
  if (!checked.ok) return { kind: 'invalid', problems: checked.problems };
  const command = checked.value;
  const userId = command.member?.user.id ?? command.user?.id;
  if (userId === undefined) {
    return { kind: 'invalid', problems: ['member.user.id: required field is missing (user.id in a direct message)'] };
  }
  const message: CommandMessage = { userId, text: commandText(command.data) };
  const conversationId = command.channel_id ?? command.channel?.id;
  if (conversationId !== undefined) message.conversationId = conversationId;
  // A server is a community: its id is the tenant, so per-tenant plugin settings cover a whole server together.
  if (command.guild_id !== undefined) message.tenantId = command.guild_id;
  return { kind: 'command', message };
}

interface CommandOption {
  name: string;
  type: number;
  value?: string | number | boolean;
  options?: readonly CommandOption[];
}

/**
 * The command as the user would have typed it: `/search query:"cats"` → `/search cats`; sub-commands
 * keep their names (`/tag add name:"x"` → `/tag add x`).
 */
export function commandText(data: ApplicationCommand['data']): string {
  const words = [`/${data.name}`];
  const walk = (options: readonly CommandOption[]): void => {
    for (const option of options) {
      if (option.type === SUB_COMMAND || option.type === SUB_COMMAND_GROUP) {
        words.push(option.name);
        walk(option.options ?? []);
      } else if (option.value !== undefined) {
        words.push(String(option.value));
      }
    }
  };
  walk(data.options ?? []);
  return words.join(' ');
}

/**
 * A message answering the interaction (CHANNEL_MESSAGE_WITH_SOURCE). Ephemeral ones only the invoking
 * user sees; mentions are never parsed, so `/echo @everyone` cannot ping a whole server.
 */
export function messageCallback(content: string, ephemeral: boolean) {
  const data: { content: string; allowed_mentions: { parse: string[] }; flags?: number } = {
    content: truncate(content, CONTENT_MAX),
    allowed_mentions: { parse: [] },
  };
  if (ephemeral) data.flags = EPHEMERAL;
  return { type: CallbackType.ChannelMessageWithSource, data };
}
