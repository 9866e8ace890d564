import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Recorded platform payloads (test/fixtures/telegram, test/fixtures/discord), in the shapes the platforms document. */
const FIXTURES = resolve(import.meta.dirname, '../fixtures');

// Payload fixtures are nested JSON; tests reach into them freely.
export type Payload = Record<string, any>;

/** A fresh copy of a fixture, to change as a test needs. */
export function fixture(platform: 'telegram' | 'discord', name: string): Payload {
  return JSON.parse(readFileSync(join(FIXTURES, platform, `${name}.json`), 'utf8')) as Payload;
}

// ---- Telegram ----

export const TELEGRAM_SECRET = 'fg-test_Secret_9f8e7d6c5b4a';
export const TELEGRAM_SECRET_HEADER = 'X-Telegram-Bot-Api-Secret-Token';

/** The flooder and the bystander of the supergroup fixtures, and the group they share. */
export const TELEGRAM_FLOODER_ID = 7310598823;
export const TELEGRAM_BYSTANDER_ID = 6184402975;
export const TELEGRAM_SUPERGROUP_ID = -1001938475620;

/** Fixture `name` as the `n`th update of a stream: update and message ids move on, as Telegram's do. */
export function telegramUpdate(name: string, n = 0): Payload {
  const update = fixture('telegram', name);
  update.update_id += n;
  if (update.message) update.message.message_id += n;
  return update;
}

// ---- Discord ----

/** A Discord member of the guild fixtures (the flooder), another member, and the DM user. */
export const DISCORD_FLOODER_ID = '802145398817163264';
export const DISCORD_BYSTANDER_ID = '915287346601951232';
export const DISCORD_DM_USER_ID = '746390158257651712';
export const DISCORD_GUILD_ID = '1298765432109876543';
export const DISCORD_CHANNEL_ID = '1298765432109876549';

export interface DiscordSigner {
  /** The 64 hex characters the Developer Portal would show. */
  publicKey: string;
  /** Headers Discord would send with `body` at `timestampSec` (Unix seconds). */
  headers(body: string, timestampSec: number): Record<string, string>;
}

/** A fresh Ed25519 key pair standing in for a Discord application's. */
export function discordSigner(): DiscordSigner {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // The SPKI DER encoding ends with the raw 32-byte key.
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return {
    publicKey: raw.toString('hex'),
    headers: (body, timestampSec) => {
      const timestamp = String(timestampSec);
      const signature = sign(null, Buffer.from(timestamp + body), privateKey).toString('hex');
      return { 'X-Signature-Ed25519': signature, 'X-Signature-Timestamp': timestamp };
    },
  };
}
