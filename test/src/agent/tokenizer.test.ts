import { describe, expect, it } from 'vitest';
import { PromptTokenizer } from '../../../src/agent/tokenizer.ts';

describe('PromptTokenizer', () => {
  it("counts text in the model's encoding (known counts of o200k_base and cl100k_base)", async () => {
    const o200k = await PromptTokenizer.load('o200k_base');
    const cl100k = await PromptTokenizer.load('cl100k_base');
    expect(o200k.text('Hello world')).toBe(2);
    expect(o200k.text('')).toBe(0);
    // The two encodings differ where a rule of thumb cannot: o200k packs non-English text tighter.
    const russian = 'Привет, как дела? Сегодня хорошая погода.';
    expect(o200k.text(russian)).toBeLessThan(cl100k.text(russian));
    // Special-token text in a user's message is counted, not refused.
    expect(o200k.text('<|endoftext|>')).toBeGreaterThan(1);
  });

  it('counts a chat prompt: each message, its framing, tool calls and the tools offered', async () => {
    const tokenizer = await PromptTokenizer.load('o200k_base');
    const user = { role: 'user' as const, content: 'Hello world' };
    // 3 for the reply's priming, 3 per message, its role (1) and its content (2).
    expect(tokenizer.prompt([user], [])).toBe(3 + 3 + 1 + 2);
    const withCall = tokenizer.prompt(
      [user, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'echo', arguments: '{"message":"hi"}' } }] }],
      [],
    );
    expect(withCall).toBe(9 + 3 + tokenizer.text('assistant') + tokenizer.text('echo') + tokenizer.text('{"message":"hi"}'));
    const tool = { type: 'function' as const, function: { name: 'echo', description: 'Echoes back the input string', parameters: { type: 'object' } } };
    expect(tokenizer.prompt([user], [tool])).toBe(9 + tokenizer.text(JSON.stringify([tool])));
  });
});
