/** The command line: the only module that touches process (argv, env, exit, signals). */
import { readFileSync } from 'node:fs';
import { createLogger } from '../log.js';
import { flagHelp, parseFlags, UsageError } from './args.js';
import { SERVE_FLAGS, serve, StartupError } from './serve.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `sidecar-injector ${VERSION}: a Kubernetes mutating admission webhook that injects sidecars.

Usage: sidecar-injector [COMMAND] [FLAGS]

Commands:
  serve               run the webhook server (the default)

Run 'sidecar-injector COMMAND --help' for a command's flags.
  --help, --version`;

async function runServe(argv: string[]): Promise<number> {
  const { flags } = parseFlags(SERVE_FLAGS, argv, process.env);
  if (flags.help) {
    process.stdout.write(`Usage: sidecar-injector serve [FLAGS]\n\nRuns the webhook: POST /mutate, GET /healthz, GET /readyz over HTTPS.\n\n${flagHelp(SERVE_FLAGS)}\n`);
    return 0;
  }
  const logger = createLogger(flags['log-level'] as string);
  const handle = await serve(flags, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      void handle.close().then(resolve);
      process.once(signal, () => process.exit(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = argv[0] === undefined || argv[0].startsWith('-') ? 'serve' : argv[0];
  const rest = command === argv[0] ? argv.slice(1) : argv;
  switch (command) {
    case 'serve':
      return runServe(rest);
    default:
      throw new UsageError(`unknown command "${command}" (see sidecar-injector --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) process.stderr.write(`sidecar-injector: ${err.message}\n`);
    else if (err instanceof StartupError) process.stderr.write(`sidecar-injector: cannot start:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
    else process.stderr.write(`sidecar-injector: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
