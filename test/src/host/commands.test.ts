import { describe, expect, it } from 'vitest';
import { ChatCommands } from '../../../src/host/commands.ts';

describe('chat commands', () => {
  const answer = () => 'ok';

  it('matches a command in any case, with a bot suffix, and hands on what follows', () => {
    const commands = new ChatCommands();
    commands.add('p', 'limits', answer);
    expect(commands.match('/limits')?.args).toBe('');
    expect(commands.match('  /Limits  now please ')?.args).toBe('now please');
    expect(commands.match('/limits@FloodgateBot')?.handler).toBe(answer);
    expect(commands.match('/limitsx')).toBeUndefined();
    expect(commands.match('limits')).toBeUndefined();
    expect(commands.match('/search cats')).toBeUndefined();
    expect(commands.match('')).toBeUndefined();
  });

  it('refuses a name another plugin answers, or one no platform could send', () => {
    const commands = new ChatCommands();
    commands.add('p', 'limits', answer);
    expect(() => commands.add('q', 'limits', answer)).toThrow('command /limits is already answered by plugin "p"');
    expect(() => commands.add('q', 'Has Space', answer)).toThrow('a command name is 1-32');
    expect(() => commands.add('q', '', answer)).toThrow('a command name is 1-32');
  });

  it('goes with its plugin', () => {
    const commands = new ChatCommands();
    commands.add('p', 'limits', answer, { description: 'what you have left' });
    commands.add('q', 'other', answer);
    expect(commands.list()).toEqual([
      { name: 'limits', description: 'what you have left' },
      { name: 'other', description: undefined },
    ]);
    commands.withdraw('p');
    expect(commands.match('/limits')).toBeUndefined();
    expect(commands.match('/other')).toBeDefined();
  });

  it('joins the status lines of the commands that have one', async () => {
    const commands = new ChatCommands();
    const who = { channel: 'cli', userId: 'local', conversationId: 'cli' };
    expect(await commands.statusLine(who)).toBe('');
    commands.add('p', 'limits', answer, { status: ({ userId }) => `left for ${userId.length}` });
    commands.add('q', 'quiet', answer, { status: () => '' });
    commands.add('r', 'plain', answer);
    expect(await commands.statusLine(who)).toBe('left for 5');
  });
});
