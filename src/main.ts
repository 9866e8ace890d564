import { parseArgs, USAGE } from './cli-args.ts';
import { loadConfig } from './config/load.ts';
import { FloodgateError, errorMessage } from './errors.ts';
import { Gateway } from './gateway.ts';
import { TEST_CLOCK_ENV, testClockFromEnv, type FileClock } from './test-clock.ts';

/** EX_CONFIG from sysexits.h: the configuration is wrong. */
const EXIT_CONFIG = 78;

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`floodgate: ${errorMessage(error)}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const configPath = args.configPath;
  // SIGHUP: re-read the config file; a bad one is refused with every problem and the running one stays.
  // Listened for from the start: a SIGHUP's default action ends the process, and one that comes while
  // the gateway is still starting is applied once it has started.
  let reloadOnStart = false;
  let running: Gateway | undefined;
  process.on('SIGHUP', () => {
    if (running === undefined) reloadOnStart = true;
    else reload(running, configPath);
  });
  let gateway: Gateway;
  let clock: FileClock | undefined;
  try {
    clock = testClockFromEnv(process.env);
  } catch (error) {
    process.stderr.write(`floodgate: cannot start: ${errorMessage(error)}\n`);
    process.exit(2);
  }
  try {
    gateway = await Gateway.start({ loaded: loadConfig(configPath), ...(clock ? { clock } : {}) });
  } catch (error) {
    const code = error instanceof FloodgateError ? `[${error.code}] ` : '';
    process.stderr.write(`floodgate: cannot start: ${code}${errorMessage(error)}\n`);
    process.exit(error instanceof FloodgateError ? EXIT_CONFIG : 1);
  }
  const shutdown = (signal: NodeJS.Signals): void => {
    gateway.logger.info({ signal }, 'stopping');
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`floodgate: stop failed: ${errorMessage(error)}\n`);
        process.exit(1);
      },
    );
  };
  if (clock) gateway.logger.warn({ file: clock.path }, `test clock in use: time comes from ${TEST_CLOCK_ENV}; never set it outside tests`);
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  running = gateway;
  if (reloadOnStart) reload(gateway, configPath);
}

function reload(gateway: Gateway, configPath: string): void {
  let loaded;
  try {
    loaded = loadConfig(configPath);
  } catch (error) {
    return rejected(gateway, error);
  }
  gateway.reload(loaded).catch((error: unknown) => rejected(gateway, error));
}

function rejected(gateway: Gateway, error: unknown): void {
  gateway.logger.error(
    { code: error instanceof FloodgateError ? error.code : undefined, err_message: errorMessage(error) },
    'config reload rejected; the running config stays',
  );
}

void main();
