import { parseArgs } from './cli-args.ts';
import { loadConfig } from './config/load.ts';
import { errorMessage } from './errors.ts';
import { Gateway } from './gateway.ts';
import { createLogger } from './logger.ts';
import { pino } from 'pino';

/**
 * `npm run chat`: the gateway from config.json with only the terminal channel, so anyone can flood it
 * by hand and see the friendly reply. Logs go to stderr, errors only, to keep the chat readable.
 */
async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const loaded = loadConfig(args.configPath);
  loaded.config.channels.http.enabled = false;
  loaded.config.channels.cli.enabled = true;
  const logger = createLogger({ level: 'error', destination: pino.destination({ fd: 2, sync: true }) });
  const gateway = await Gateway.start({ loaded, logger });
  const stop = () => void gateway.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await gateway.cli!.closed;
  // Let replies to the last lines (piped input) arrive before stopping.
  await gateway.stop();
}

main().catch((error: unknown) => {
  process.stderr.write(`floodgate chat: ${errorMessage(error)}\n`);
  process.exit(78);
});
