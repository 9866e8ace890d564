import { resolve } from 'node:path';

export interface CliArgs {
  configPath: string;
  help: boolean;
}

export const USAGE = 'usage: npm start -- [--config <file>]   (default: ./config.json)';

/** `--config <file>` or `--config=<file>`; anything else is an error that says what is accepted. */
export function parseArgs(argv: readonly string[]): CliArgs {
  let configPath = 'config.json';
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') help = true;
    else if (arg === '--config' || arg === '-c') {
      const value = argv[++i];
      if (value === undefined || value.startsWith('-')) throw new Error(`--config needs a file path\n${USAGE}`);
      configPath = value;
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
      if (configPath === '') throw new Error(`--config needs a file path\n${USAGE}`);
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return { configPath: resolve(configPath), help };
}
