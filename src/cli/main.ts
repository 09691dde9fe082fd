/** The command line: the only module that touches process (argv, env, stdio, exit, signals). */
import { readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { createLogger } from '../log.js';
import { flagHelp, parseFlags, UsageError } from './args.js';
import { AUDIT_FLAGS, AUDIT_USAGE, runAuditCommand } from './audit.js';
import { CERTS_FLAGS, CERTS_USAGE, runCerts } from './certs.js';
import { CRDS_FLAGS, CRDS_USAGE, runCrds } from './crds.js';
import { INJECT_FLAGS, INJECT_USAGE, runInject } from './inject.js';
import type { CommandIO } from './io.js';
import { POLICY_FLAGS, POLICY_USAGE, runPolicy } from './policy.js';
import { SERVE_FLAGS, SERVE_USAGE, serve, SHUTDOWN_BOUND_MS, StartupError, type ServeHandle } from './serve.js';
import { runValidateConfig, VALIDATE_FLAGS, VALIDATE_USAGE } from './validate-config.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `sidecar-injector ${VERSION}: a Kubernetes mutating admission webhook that injects sidecars.

Usage: sidecar-injector [COMMAND] [FLAGS]

Commands:
  serve                 run the webhook server (the default)
  inject -f FILE|-      print manifests with sidecars injected, as the webhook would
  certs                 write a CA and serving certificate; print the caBundle
  validate-config FILE  check a config file
  audit [-n NS | -A]    with a cluster: pods that missed their sidecars or run an old config
  policy                print the config as MutatingAdmissionPolicies (Kubernetes 1.34+)
  crds                  print the SidecarProfile CustomResourceDefinition (installs without Helm)

Flags:
  -h, --help            show help ('sidecar-injector COMMAND --help' for a command)
  -v, --version         print the version

Every flag of serve and inject's --config can also be set as an environment
variable SIDECAR_INJECTOR_<FLAG> (e.g. SIDECAR_INJECTOR_PORT); a flag wins.`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Flushes buffered log lines; replaced once serve has a logger. */
let flush = (): void => undefined;

function exit(code: number): never {
  flush();
  process.exit(code);
}

/**
 * Resolves once what the command wrote to stdout is handed to the OS: a write
 * to a pipe may complete later (Node's process I/O notes), and exiting before
 * cut `crds | kubectl apply -f -` at 64 KiB.
 */
function stdoutWritten(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

// A reader that stops early (`crds | head`) closes the pipe: the rest has nowhere to go.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  exit(0);
});

const io: CommandIO = {
  env: process.env,
  readStdin: () => text(process.stdin),
  out: (s) => process.stdout.write(s),
  outIsTerminal: process.stdout.isTTY === true && !process.env.NO_COLOR,
  err: (s) => process.stderr.write(s),
};

async function runServe(argv: string[]): Promise<number> {
  const { flags } = parseFlags(SERVE_FLAGS, argv, process.env);
  const level = flags['log-level'] as string;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  const { logger, flushLogs } = createLogger(level);
  flush = flushLogs;
  // Handlers go in before anything listens: a signal while starting (a rollout right after a pod
  // starts) waits for the start to finish and then shuts down cleanly instead of killing the process.
  const started: { handle?: ServeHandle; stopRequested?: boolean } = {};
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  const stop = (h: ServeHandle) => void h.shutdown().then(stopped);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) exit(1); // a second signal means "now"
    logger.info({ signal, starting: started.handle === undefined }, 'signal received');
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      exit(1);
    }, SHUTDOWN_BOUND_MS).unref();
    if (started.handle) stop(started.handle);
    else started.stopRequested = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  started.handle = await serve(flags, logger, { env: process.env, leanClientNode: true });
  if (started.stopRequested) stop(started.handle);
  await done;
  return 0;
}

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; usage: string; flags: typeof SERVE_FLAGS }> = {
  serve: { run: runServe, usage: SERVE_USAGE, flags: SERVE_FLAGS },
  inject: { run: (argv) => runInject(argv, io), usage: INJECT_USAGE, flags: INJECT_FLAGS },
  certs: { run: (argv) => runCerts(argv, io, { lean: true }), usage: CERTS_USAGE, flags: CERTS_FLAGS },
  'validate-config': { run: (argv) => runValidateConfig(argv, io), usage: VALIDATE_USAGE, flags: VALIDATE_FLAGS },
  audit: { run: (argv) => runAuditCommand(argv, io, { lean: true }), usage: AUDIT_USAGE, flags: AUDIT_FLAGS },
  policy: { run: (argv) => runPolicy(argv, io), usage: POLICY_USAGE, flags: POLICY_FLAGS },
  crds: { run: (argv) => runCrds(argv, io), usage: CRDS_USAGE, flags: CRDS_FLAGS },
};

async function main(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === '--version' || first === '-v') {
    io.out(`${VERSION}\n`);
    return 0;
  }
  if (first === '--help' || first === '-h') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  const helpTopic = first === 'help' ? argv[1] : undefined;
  const name = helpTopic ?? (first === undefined || first.startsWith('-') ? 'serve' : first);
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}" (see sidecar-injector --help)`);
  const args = name === first ? argv.slice(1) : argv;
  if (first === 'help' || args.includes('--help') || args.includes('-h')) {
    io.out(`${command.usage}\n\nFlags:\n${flagHelp(command.flags)}\n`);
    return 0;
  }
  return command.run(args);
}

main(process.argv.slice(2)).then(
  (code) => stdoutWritten().then(() => exit(code)),
  (err: unknown) => {
    if (err instanceof UsageError) process.stderr.write(`sidecar-injector: ${err.message}\n`);
    else if (err instanceof StartupError) {
      const [only, ...more] = err.problems;
      process.stderr.write(more.length === 0 ? `sidecar-injector: cannot start: ${only}\n` : `sidecar-injector: cannot start:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
    }
    else process.stderr.write(`sidecar-injector: ${(err as Error).stack ?? String(err)}\n`);
    exit(err instanceof UsageError ? 2 : 1);
  },
);
