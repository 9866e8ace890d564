import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs, USAGE } from '../../src/cli-args.ts';

describe('parseArgs', () => {
  it('defaults to ./config.json, resolved to an absolute path', () => {
    expect(parseArgs([])).toEqual({ configPath: resolve('config.json'), help: false });
  });

  it.each([
    [['--config', 'conf/prod.json']],
    [['-c', 'conf/prod.json']],
    [['--config=conf/prod.json']],
  ])('accepts %j', (argv) => {
    expect(parseArgs(argv)).toEqual({ configPath: resolve('conf/prod.json'), help: false });
  });

  it('keeps an absolute config path as given', () => {
    expect(parseArgs(['--config', '/etc/floodgate.json']).configPath).toBe('/etc/floodgate.json');
  });

  it('the last --config wins', () => {
    expect(parseArgs(['--config', 'a.json', '--config=b.json']).configPath).toBe(resolve('b.json'));
  });

  it.each([[['--help']], [['-h']], [['--config', 'x.json', '-h']]])('recognises help in %j', (argv) => {
    expect(parseArgs(argv).help).toBe(true);
  });

  it.each([[['--config']], [['-c']], [['--config', '--help']], [['--config=']]])('refuses %j: --config needs a path', (argv) => {
    expect(() => parseArgs(argv)).toThrow(`--config needs a file path\n${USAGE}`);
  });

  it.each([['--port'], ['config.json'], ['-x']])('refuses the unknown argument %j, showing the usage', (arg) => {
    expect(() => parseArgs([arg])).toThrow(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  });
});
