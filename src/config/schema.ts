import { z } from 'zod';
import { FORWARDED_HEADERS } from '../channels/client-address.ts';
import { ADMIN_PREFIX, OPERATOR_PATHS, RESERVED_PATHS } from '../channels/routes.ts';
import { parseRange } from '../util/ip-address.ts';
import { AgentConfigSchema } from './agent-schema.ts';

export const PLUGIN_MODES = ['enforce', 'permissive', 'disabled'] as const;
export type PluginMode = (typeof PLUGIN_MODES)[number];
export const ON_ERROR = ['fail_open', 'fail_closed'] as const;
export type OnError = (typeof ON_ERROR)[number];

const port = z.number().int().min(0).max(65535);

/** A CIDR range or a single address, checked now: a typo must not quietly trust nobody (or everybody). */
const addressRange = z.string().superRefine((text, ctx) => {
  const range = parseRange(text.trim());
  if ('problem' in range) ctx.addIssue({ code: 'custom', message: range.problem, input: text });
});

const HttpChannelSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 asks the OS for any free port; the bound port is logged. */
  port: port.default(8787),
  max_body_bytes: z.number().int().min(1).default(64 * 1024),
  /** A message whose reply has not come back by then gets 504 instead of hanging the client. */
  reply_timeout_ms: z.number().int().min(1).default(30_000),
  /** Turns the admin API on; requests must carry it as a bearer token. */
  admin_token: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Proxies whose forwarded header names the client; from any other peer the header is ignored. */
  trusted_proxies: z.array(addressRange).default([]),
  /** The header those proxies write: X-Forwarded-For, or RFC 7239 Forwarded. */
  forwarded_header: z.enum(FORWARDED_HEADERS).default('x-forwarded-for'),
});

const CliChannelSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** The local user the terminal chat speaks as. */
  user_id: z.string().default('local'),
  /** After each answer, a line of what the plugins say about the user's quota. */
  status_line: z.boolean().default(true),
});

/** A webhook path on the HTTP channel's server, matched exactly (query strings ignored). */
const webhookPath = z.string().regex(/^\/[^\s?#]*$/, { error: 'must start with "/" and contain no spaces, "?" or "#"' });

const TelegramChannelSchema = z.strictObject({
  enabled: z.boolean().default(false),
  path: webhookPath.default('/telegram/webhook'),
  /** Telegram sends it back in X-Telegram-Bot-Api-Secret-Token; the value given to setWebhook. */
  secret_token: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,256}$/, { error: 'must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram\'s rule)' })
    .optional(),
});

const DiscordChannelSchema = z.strictObject({
  enabled: z.boolean().default(false),
  path: webhookPath.default('/discord/interactions'),
  /** The application's Ed25519 public key, as the Developer Portal shows it. */
  public_key: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be the 64 hexadecimal characters of the application\'s public key' })
    .optional(),
});

type ChannelsInput = {
  http: { enabled: boolean };
  telegram: z.infer<typeof TelegramChannelSchema>;
  discord: z.infer<typeof DiscordChannelSchema>;
};

/**
 * The webhook channels are served by the HTTP channel's server: it must be on, their paths must be free,
 * and each needs the secret that proves a request came from its platform.
 */
function checkWebhookChannels(channels: ChannelsInput, ctx: z.RefinementCtx): void {
  const taken = new Map<string, string>([...RESERVED_PATHS, ...OPERATOR_PATHS].map((path) => [path, 'the HTTP channel']));
  const webhooks = [
    { name: 'telegram', config: channels.telegram, secret: 'secret_token', value: channels.telegram.secret_token },
    { name: 'discord', config: channels.discord, secret: 'public_key', value: channels.discord.public_key },
  ] as const;
  for (const { name, config, secret, value } of webhooks) {
    if (!config.enabled) continue;
    if (!channels.http.enabled) {
      ctx.addIssue({
        code: 'custom',
        path: [name, 'enabled'],
        message: 'needs channels.http.enabled to be true: the webhook is served by the HTTP channel',
      });
    }
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', path: [name, secret], message: `required when channels.${name}.enabled is true` });
    }
    const owner = config.path.startsWith(ADMIN_PREFIX) ? 'the admin API' : taken.get(config.path);
    if (owner !== undefined) {
      ctx.addIssue({ code: 'custom', path: [name, 'path'], message: `${JSON.stringify(config.path)} is already taken by ${owner}` });
    }
    taken.set(config.path, `channels.${name}.path`);
  }
}

export const PluginEntrySchema = z.strictObject({
  name: z.string().min(1),
  /**
   * The plugin's folder (its manifest names the module) or module, relative to the config file. Absent
   * for a plugin that comes with Floodgate, found by its name (see plugin-manifest.yaml).
   */
  path: z.string().min(1).optional(),
  enabled: z.boolean().default(true),
  mode: z.enum(PLUGIN_MODES).default('enforce'),
  /** Lower runs first. */
  priority: z.number().int().default(100),
  on_error: z.enum(ON_ERROR).default('fail_open'),
  /** Validated later against the plugin's own schema, once the plugin is loaded. */
  config: z.record(z.string(), z.unknown()).default({}),
});
export type PluginEntry = z.infer<typeof PluginEntrySchema>;

export const GatewayConfigSchema = z.strictObject({
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Salt for the hashes that stand for users in logs; random per process when unset. */
      identity_salt: z.string().min(8).optional(),
    })
    .default({ level: 'info' }),
  channels: z
    .strictObject({
      http: HttpChannelSchema.default(HttpChannelSchema.parse({})),
      cli: CliChannelSchema.default(CliChannelSchema.parse({})),
      telegram: TelegramChannelSchema.default(TelegramChannelSchema.parse({})),
      discord: DiscordChannelSchema.default(DiscordChannelSchema.parse({})),
    })
    .superRefine(checkWebhookChannels)
    .default({
      http: HttpChannelSchema.parse({}),
      cli: CliChannelSchema.parse({}),
      telegram: TelegramChannelSchema.parse({}),
      discord: DiscordChannelSchema.parse({}),
    }),
  hooks: z
    .strictObject({
      /** A hook that has not settled by then counts as a plugin error (see on_error). */
      timeout_ms: z.number().int().min(1).default(1000),
    })
    .default({ timeout_ms: 1000 }),
  plugins: z.array(PluginEntrySchema).default([]),
  /** Who answers messages: the offline demo agent unless a model is configured (see agent-schema.ts). */
  agent: AgentConfigSchema.default({ kind: 'demo' }),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type HttpChannelConfig = GatewayConfig['channels']['http'];
export type CliChannelConfig = GatewayConfig['channels']['cli'];
export type TelegramChannelConfig = GatewayConfig['channels']['telegram'];
export type DiscordChannelConfig = GatewayConfig['channels']['discord'];
