import { z } from 'zod';
import { RateLimiterOptions, RateSpec, SettingObject } from '../options.ts';
import { RATE } from '../rate.ts';
import { HostOptions } from './options.ts';

type Json = Record<string, unknown>;

/**
 * The rate syntax as a JSON Schema pattern: the same expression as parseRate's, whose unit is matched
 * case-insensitively there (patterns have no flags). parseRate still judges units and ranges.
 */
const RATE_JSON: Json = { type: 'string', pattern: RATE.source.replace('[a-z_]', '[a-zA-Z_]'), description: 'a rate like "30/m", "100/15m" or "5000/calendar_day"' };
const RATES_JSON: Json = { type: 'array', items: RATE_JSON, minItems: 1, maxItems: 10 };
const RATE_SPEC_JSON: Json = { anyOf: [RATE_JSON, RATES_JSON] };

/** The object form of a setting, its rate fields (parsed by transforms) said as rate specs. */
function settingObjectJson(fields: readonly string[] | undefined): Json {
  const object = z.toJSONSchema(SettingObject, { io: 'input', unrepresentable: 'any' }) as Json;
  delete object.$schema;
  const properties = object.properties as Record<string, Json>;
  properties.rate = RATE_SPEC_JSON;
  properties.tokens = RATE_SPEC_JSON;
  if (fields) for (const name of Object.keys(properties)) if (!fields.includes(name)) delete properties[name];
  return object;
}

/** A setting in any of its forms: "30/m", ["30/m", "500/h"], or {rate, tokens, ...}. */
function settingJson(fields?: readonly string[]): Json {
  return { anyOf: [RATE_JSON, RATES_JSON, settingObjectJson(fields)] };
}

// The transforms inside the options, found where the options use them (not copied).
const Setting = RateLimiterOptions.shape.by_user.unwrap();
const ToolSetting = RateLimiterOptions.shape.by_tool.unwrap().valueType;
/** A tool's setting takes a rate and shadow only: tokens and concurrency belong to prompts. */
const TOOL_FIELDS = ['rate', 'shadow'];

/**
 * The JSON Schema of the OpenClaw plugin's config (openclaw.plugin.json's configSchema), generated
 * from the zod schemas that parse it: the limiter's options, as in Floodgate's config, and the
 * host settings. OpenClaw checks a config's shape with it before loading the plugin; the plugin
 * then parses the config with zod, which also checks what JSON Schema cannot say (rate units,
 * placeholders in reply texts, settings that exclude each other).
 */
export function openClawConfigSchema(): Json {
  const limiter = z.toJSONSchema(RateLimiterOptions, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      if (ctx.zodSchema === Setting) Object.assign(ctx.jsonSchema, settingJson());
      else if (ctx.zodSchema === ToolSetting) Object.assign(ctx.jsonSchema, settingJson(TOOL_FIELDS));
      else if (ctx.zodSchema === RateSpec) Object.assign(ctx.jsonSchema, RATE_SPEC_JSON);
    },
  }) as Json;
  const host = z.toJSONSchema(HostOptions, { io: 'input' }) as Json;
  const properties = { ...(limiter.properties as Json), ...(host.properties as Json) };
  const overlap = Object.keys(limiter.properties as Json).filter((key) => key in (host.properties as Json));
  if (overlap.length > 0) throw new Error(`host settings shadow limiter options: ${overlap.join(', ')}`);
  return { type: 'object', additionalProperties: false, properties };
}
