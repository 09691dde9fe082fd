/** `serve`: load config and TLS, start the webhook. Returns a handle; main.ts owns the process. */
import { access } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import type { NamespaceLabels } from '../core/mutate.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { createApp } from '../server/app.js';
import { listenHttps, type HttpsListener } from '../server/listen.js';
import { generateCertificates, writeCertificates } from '../tls/generate.js';
import { loadTlsPair } from '../tls/load.js';
import { intFlag, type FlagSpecs, type ParsedFlags } from './args.js';

export const SERVE_FLAGS: FlagSpecs = {
  config: { type: 'string', env: true, help: 'profiles config file (the built-in example when absent)' },
  'tls-cert': { type: 'string', env: true, default: 'certs/tls.crt', help: 'serving certificate (PEM)' },
  'tls-key': { type: 'string', env: true, default: 'certs/tls.key', help: 'serving key (PEM)' },
  'dev-certs': { type: 'boolean', env: true, default: false, help: 'create a development CA and certificate when the files are missing' },
  port: { type: 'string', env: true, default: '8443', help: 'HTTPS port for /mutate' },
  host: { type: 'string', env: true, default: '0.0.0.0', help: 'address to listen on' },
  'log-level': { type: 'string', env: true, default: 'info', help: 'trace, debug, info, warn, error' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const SERVE_USAGE = `Usage: sidecar-injector serve [FLAGS]

Runs the webhook: POST /mutate, GET /healthz, GET /readyz over HTTPS (TLS 1.2+).

Example:
  sidecar-injector serve --config profiles.yaml --tls-cert /tls/tls.crt --tls-key /tls/tls.key`;

export class StartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export interface ServeHandle {
  port: number;
  listener: HttpsListener;
  config: CompiledConfig;
  close(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function serve(flags: ParsedFlags, logger: Logger, namespaceLabels: NamespaceLabels = () => undefined): Promise<ServeHandle> {
  const port = intFlag(flags, 'port', 0, 65535);
  const configPath = (flags.config as string | undefined) ?? BUILTIN_CONFIG_PATH;
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) throw new StartupError(loaded.errors);
  const config = loaded.compiled;

  const certPath = flags['tls-cert'] as string;
  const keyPath = flags['tls-key'] as string;
  if (flags['dev-certs'] && !(await exists(certPath)) && !(await exists(keyPath))) {
    const dir = dirname(certPath);
    if (dirname(keyPath) !== dir) throw new StartupError(['--dev-certs needs --tls-cert and --tls-key in one directory']);
    await writeCertificates(dir, await generateCertificates({ service: 'sidecar-injector', namespace: 'default', dev: true, days: 365 }));
    logger.info({ dir }, 'created development certificates (CA in ca.crt)');
  }
  const tls = await loadTlsPair(certPath, keyPath);
  if (!tls.ok) throw new StartupError([tls.error]);

  let ready = true;
  const app = createApp({
    config: () => config,
    namespaceLabels,
    logger,
    now: () => performance.now(),
    ready: () => ready,
  });
  const listener = await listenHttps(app, { port, host: flags.host as string, tls: tls.pair });
  logger.info({ port: listener.port, host: flags.host, config: configPath, revision: config.revision }, 'serving /mutate over HTTPS');
  return {
    port: listener.port,
    listener,
    config,
    close: async () => {
      ready = false;
      await listener.close();
    },
  };
}
