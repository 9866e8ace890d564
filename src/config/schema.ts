import { z } from 'zod';

export const PLUGIN_MODES = ['enforce', 'permissive', 'disabled'] as const;
export type PluginMode = (typeof PLUGIN_MODES)[number];
export const ON_ERROR = ['fail_open', 'fail_closed'] as const;
export type OnError = (typeof ON_ERROR)[number];

const port = z.number().int().min(0).max(65535);

const HttpChannelSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 asks the OS for any free port; the bound port is logged. */
  port: port.default(8787),
  max_body_bytes: z.number().int().min(1).default(64 * 1024),
  /** A message whose reply has not come back by then gets 504 instead of hanging the client. */
  reply_timeout_ms: z.number().int().min(1).default(30_000),
});

const CliChannelSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** The local user the terminal chat speaks as. */
  user_id: z.string().default('local'),
});

export const PluginEntrySchema = z.strictObject({
  name: z.string().min(1),
  /** Module path, relative to the config file. */
  path: z.string().min(1),
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
    })
    .default({ http: HttpChannelSchema.parse({}), cli: CliChannelSchema.parse({}) }),
  hooks: z
    .strictObject({
      /** A hook that has not settled by then counts as a plugin error (see on_error). */
      timeout_ms: z.number().int().min(1).default(1000),
    })
    .default({ timeout_ms: 1000 }),
  plugins: z.array(PluginEntrySchema).default([]),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type HttpChannelConfig = GatewayConfig['channels']['http'];
export type CliChannelConfig = GatewayConfig['channels']['cli'];
