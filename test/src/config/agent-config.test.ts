import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { ErrorCode, FloodgateError } from '../../../src/errors.ts';

function problems(config: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(JSON.stringify(config), '/srv/config.json', env);
  } catch (error) {
    expect(error).toBeInstanceOf(FloodgateError);
    expect((error as FloodgateError).code).toBe(ErrorCode.Config);
    return (error as FloodgateError).problems;
  }
  throw new Error('the config was accepted');
}

const agent = (fields: Record<string, unknown>) => ({ agent: { kind: 'openai', model: 'gpt-4o-mini', ...fields } });

describe('agent config', () => {
  it('defaults to the demo agent', () => {
    expect(parseConfig('{}', '/srv/config.json').config.agent).toEqual({ kind: 'demo' });
  });

  it('fills in every default of the model agent', () => {
    const { config } = parseConfig(JSON.stringify(agent({ api_key_env: 'OPENAI_API_KEY' })), '/srv/config.json', { OPENAI_API_KEY: 'sk-x' });
    expect(config.agent).toEqual({
      kind: 'openai',
      model: 'gpt-4o-mini',
      api_key_env: 'OPENAI_API_KEY',
      base_url: 'https://api.openai.com/v1',
      max_output_tokens: 1024,
      max_tokens_field: 'max_tokens',
      timeout_ms: 60_000,
      max_tool_rounds: 4,
      tokenizer: 'o200k_base',
      history: { turns: 20, max_conversations: 10_000, max_chars: 32_000, idle_ms: 3_600_000 },
      mcp_servers: [],
    });
    // The key itself is nowhere in the config.
    expect(JSON.stringify(config)).not.toContain('sk-x');
  });

  it('names every bad field', () => {
    expect(
      problems(
        agent({
          base_url: 'ftp://models.example.com',
          max_output_tokens: 0,
          timeout_ms: 'soon',
          max_tool_rounds: -1,
          tokenizer: 'p50k',
          histroy: {},
          history: { turns: 2.5 },
        }),
      ),
    ).toEqual([
      'agent.base_url: must be an http:// or https:// URL',
      'agent.max_output_tokens: Too small: expected number to be >=1',
      'agent.timeout_ms: expected number, got string "soon"',
      'agent.max_tool_rounds: Too small: expected number to be >=0',
      'agent.tokenizer: string "p50k" is not allowed; expected one of "o200k_base", "cl100k_base"',
      'agent.history.turns: expected a whole number, got number 2.5',
      'agent.histroy: unknown field',
    ]);
    expect(problems({ agent: { kind: 'opnai' } })).toEqual(['agent.kind: "opnai" is not allowed; expected one of "demo", "openai"']);
    expect(problems({ agent: { kind: 'openai' } })).toEqual(['agent.model: required field is missing (expected string)']);
  });

  it('the API key only from the environment: a key in the file is refused, a missing variable named', () => {
    expect(problems(agent({ api_key: 'sk-in-the-file' }))).toEqual([
      'agent.api_key: the API key is never read from the file: put it in an environment variable and name it in "api_key_env"',
    ]);
    expect(problems(agent({ api_key_env: 'MY_MODEL_KEY' }), { MY_MODEL_KEY: '' })).toEqual([
      'agent.api_key_env: the environment variable MY_MODEL_KEY is not set (the API key is read from it)',
    ]);
    expect(problems(agent({ api_key_env: 'not a name' }))).toEqual(['agent.api_key_env: must be an environment variable name (letters, digits, _)']);
  });

  it('MCP servers: a command or a URL, each field where it belongs, names unique, secrets from the environment', () => {
    expect(
      problems(
        agent({
          mcp_servers: [
            { name: 'both', command: 'npx', url: 'http://127.0.0.1:3001/mcp' },
            { name: 'neither' },
            { name: 'remote', url: 'http://127.0.0.1:3001/mcp', args: ['x'], pass_env: ['HOME'] },
            { name: 'local', command: 'node', bearer_token_env: 'TOKEN' },
            { name: 'both' , command: 'node'},
          ],
        }),
      ),
    ).toEqual([
      'agent.mcp_servers[0].command: set exactly one of "command" (a program over stdio) and "url" (Streamable HTTP)',
      'agent.mcp_servers[1].command: set exactly one of "command" (a program over stdio) and "url" (Streamable HTTP)',
      'agent.mcp_servers[2].pass_env: only for a server started with "command"',
      'agent.mcp_servers[2].args: only for a server started with "command"',
      'agent.mcp_servers[3].bearer_token_env: only for a server reached by "url"',
      'agent.mcp_servers[4].name: "both" is used by another server',
    ]);
    expect(problems(agent({ mcp_servers: [{ name: 'has space', command: 'x' }] }))).toEqual([
      'agent.mcp_servers[0].name: must be 1-64 characters of A-Z, a-z, 0-9, _ and -',
    ]);
    expect(problems(agent({ mcp_servers: [{ name: 'remote', url: 'http://127.0.0.1/mcp', bearer_token_env: 'MCP_TOKEN' }] }))).toEqual([
      'agent.mcp_servers[0].bearer_token_env: the environment variable MCP_TOKEN is not set',
    ]);
  });
});
