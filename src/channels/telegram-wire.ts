import { Type } from '@sinclair/typebox';
import { truncate } from '../util/truncate.ts';
import { compileValidator } from './wire.ts';

/** Telegram ids are integers of up to 52 bits: anything else cannot be one (and could not be echoed exactly). */
const TelegramId = Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });

/**
 * The part of a Bot API Update this channel reads (core.telegram.org/bots/api#update): a new `message`
 * with its id, sender (`from`, a User), `chat` and `text`. Updates carry many more fields, and other
 * kinds (`edited_message`, `callback_query`, ...) instead of `message`; those pass unchecked.
 */
export const TelegramUpdate = Type.Object({
  update_id: TelegramId,
  message: Type.Optional(
    Type.Object({
      message_id: TelegramId,
      from: Type.Optional(Type.Object({ id: TelegramId })),
      chat: Type.Object({ id: TelegramId }),
      text: Type.Optional(Type.String()),
    }),
  ),
});

const checkUpdate = compileValidator(TelegramUpdate);

/** Telegram's limit on a message's text. */
const TEXT_MAX = 4096;

export type ReadUpdate =
  | { kind: 'message'; messageId: number; userId: number; chatId: number; text: string }
  | { kind: 'ignored'; what: string }
  | { kind: 'invalid'; problems: string[] };

/**
 * A text message from a user, or the kind of update this channel does not handle (stickers, edits,
 * button presses, channel posts ...), or what is wrong with a body that is no Update at all.
 */
export function readUpdate(body: unknown): ReadUpdate {
  const checked = checkUpdate(body);
  if (!checked.ok) return { kind: 'invalid', problems: checked.problems };
  const { message } = checked.value;
  if (message === undefined) {
    const what = Object.keys(body as object).find((key) => key !== 'update_id') ?? 'empty update';
    return { kind: 'ignored', what: what.slice(0, 40) };
  }
  // Without text it is a sticker, photo, join ...; without a sender it cannot be counted against anyone.
  if (message.text === undefined || message.text.trim() === '') return { kind: 'ignored', what: 'message without text' };
  if (message.from === undefined) return { kind: 'ignored', what: 'message without sender' };
  return {
    kind: 'message',
    messageId: message.message_id,
    userId: message.from.id,
    chatId: message.chat.id,
    text: withoutBotName(message.text),
  };
}

/**
 * In groups Telegram addresses a command to one bot: `/search@MyBot cats`. The agent knows commands by
 * their bare name, so the suffix goes: `/search cats`.
 */
export function withoutBotName(text: string): string {
  return text.replace(/^\/(\w+)@\w+(?=\s|$)/, '/$1');
}

/**
 * The webhook answer that makes Telegram send `text` as a reply to the message: a Bot API method call
 * in the response body (core.telegram.org/bots/api#making-requests-when-getting-updates).
 */
export function sendMessageCall(chatId: number, replyTo: number, text: string) {
  return { method: 'sendMessage', chat_id: chatId, text: truncate(text, TEXT_MAX), reply_to_message_id: replyTo };
}
