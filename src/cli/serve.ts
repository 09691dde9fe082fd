/**
 * `serve`: wires config, TLS, metrics, file watching and shutdown around the
 * app. Returns a handle; main.ts owns the process and its signals.
 */
import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ServerFeatures } from '../core/inject.js';
import { featuresOf } from '../core/kube-version.js';
import { connectCluster, type KubeClient } from '../kube/client.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { createMetrics } from '../ops/metrics.js';
import { watchFiles, type FileWatcher } from '../ops/watch.js';
import { createApp } from '../server/app.js';
import { listenHttp, listenHttps, type HttpsListener, type Listener } from '../server/listen.js';
import { createMetricsApp } from '../server/metrics-app.js';
import { generateCertificates, writeCertificates } from '../tls/generate.js';
import { loadTlsPair } from '../tls/load.js';
import { durationFlag, intFlag, kubeVersionFlag, UsageError, type FlagSpecs, type ParsedFlags } from './args.js';
import { startCluster } from './cluster.js';

export const SERVE_FLAGS: FlagSpecs = {
  config: { type: 'string', env: true, help: 'profiles config file, watched for changes (the built-in example when absent)' },
  'tls-cert': { type: 'string', env: true, default: 'certs/tls.crt', help: 'serving certificate (PEM), watched for changes' },
  'tls-key': { type: 'string', env: true, default: 'certs/tls.key', help: 'serving key (PEM), watched for changes' },
  'dev-certs': { type: 'boolean', env: true, default: false, help: 'create a development CA and certificate when the files are missing' },
  port: { type: 'string', env: true, default: '8443', help: 'HTTPS port for /mutate' },
  'metrics-port': { type: 'string', env: true, default: '9090', help: 'plain HTTP port for /metrics, /healthz, /readyz; 0 turns it off' },
  host: { type: 'string', env: true, default: '0.0.0.0', help: 'address to listen on' },
  'shutdown-delay': { type: 'string', env: true, default: '5', help: 'seconds to keep accepting after SIGTERM, while endpoints stop routing here' },
  'log-level': { type: 'string', env: true, default: 'info', help: 'trace, debug, info, warn, error' },
  kubeconfig: { type: 'string', env: true, help: 'kubeconfig file for cluster access (default: in-cluster when in a pod, else none)' },
  'patch-ca-bundle': { type: 'string', env: true, help: 'MutatingWebhookConfiguration whose webhooks get ca.crt (beside --tls-cert) as caBundle' },
  events: { type: 'boolean', env: true, help: 'record Kubernetes Events for admissions (default on with a cluster)' },
  'no-events': { type: 'boolean', help: 'do not record Events' },
  'kube-version': { type: 'string', env: true, help: 'Kubernetes version X.Y to assume instead of asking the API server (nativeSidecar: auto)' },
  'audit-interval': { type: 'string', env: true, help: 'run the audit this often (e.g. 10m) and export sidecar_injector_pods{state}; needs pods list' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const SERVE_USAGE = `Usage: sidecar-injector serve [FLAGS]

Runs the webhook: POST /mutate, GET /healthz, GET /readyz over HTTPS (TLS 1.2+),
and /metrics on the metrics port. The config and certificate files are
reloaded when they change (ConfigMap and Secret symlink swaps included).

Example:
  sidecar-injector serve --config profiles.yaml --tls-cert /tls/tls.crt --tls-key /tls/tls.key`;

/** Exit within this long after the first signal, whatever is still open. */
export const SHUTDOWN_BOUND_MS = 30_000;

export class StartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export interface ServeHandle {
  port: number;
  metricsPort: number | undefined;
  /** Readiness off at once; after the delay stop accepting, drain, close. Resolves when all is closed. */
  shutdown(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function secondsFlag(flags: ParsedFlags, name: string): number {
  const raw = String(flags[name]);
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > 25) throw new UsageError(`--${name}: expected seconds from 0 to 25, got "${raw}"`);
  return n * 1000;
}

export interface ServeOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** Load client-node from the lean build-time bundle (src/kube/client.ts): the real process does. */
  leanClientNode?: boolean;
}

export async function serve(flags: ParsedFlags, logger: Logger, options: ServeOptions): Promise<ServeHandle> {
  const port = intFlag(flags, 'port', 0, 65535);
  const metricsPortFlag = intFlag(flags, 'metrics-port', 0, 65535);
  const shutdownDelayMs = secondsFlag(flags, 'shutdown-delay');
  const host = flags.host as string;

  const configPath = (flags.config as string | undefined) ?? BUILTIN_CONFIG_PATH;
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) throw new StartupError(loaded.errors);
  // One reference, swapped whole: an admission reads it once and never sees a half-loaded config.
  let config = loaded.compiled;

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
  const kubeVersion = kubeVersionFlag(flags['kube-version'] as string | undefined);
  const auditIntervalMs = durationFlag('audit-interval', flags['audit-interval'] as string | undefined);

  const metrics = createMetrics();
  metrics.configRevision(config.revision);
  let ready = true;
  const isReady = () => ready;

  let client: KubeClient | undefined;
  try {
    client = await connectCluster({ kubeconfig: flags.kubeconfig as string | undefined, env: options.env, lean: options.leanClientNode });
  } catch (err) {
    throw new StartupError([(err as Error).message]);
  }
  const caBundleName = flags['patch-ca-bundle'] as string | undefined;
  if (!client && caBundleName) throw new StartupError(['--patch-ca-bundle needs cluster access (--kubeconfig, or running in a pod)']);
  if (!client && auditIntervalMs) throw new StartupError(['--audit-interval needs cluster access (--kubeconfig, or running in a pod)']);
  const cluster = client
    ? startCluster(client, { flags, logger, metrics, kubeVersion, caPath: join(dirname(certPath), 'ca.crt'), auditIntervalMs, config: () => config })
    : undefined;
  if (!cluster) {
    logger.info('no cluster access (no --kubeconfig, not in a pod): namespace labels (rule 7), --patch-ca-bundle and events are off');
  }
  // Without a cluster, support is what --kube-version says, or unknown: the safe side.
  const noCluster: ServerFeatures = kubeVersion ? featuresOf(kubeVersion) : { nativeSidecars: false };

  const app = createApp({
    config: () => config,
    namespaceLabels: cluster ? (ns) => cluster.namespaces.labels(ns) : () => undefined,
    lookupNamespace: cluster ? (ns) => cluster.namespaces.lookup(ns) : undefined,
    server: cluster ? cluster.server : () => noCluster,
    recordEvent: cluster?.events ? (e) => cluster.events?.record(e) : undefined,
    logger,
    now: () => performance.now(),
    ready: isReady,
    notReady: cluster?.notReady,
    onAdmission: metrics.admission,
  });
  const https: HttpsListener = await listenHttps(app, { port, host, tls: tls.pair });
  let metricsListener: Listener | undefined;
  if (metricsPortFlag !== 0) metricsListener = await listenHttp(createMetricsApp(metrics.registry, isReady, cluster?.notReady), { port: metricsPortFlag, host });

  const watchers: FileWatcher[] = [];
  if (flags.config !== undefined) {
    watchers.push(
      await watchFiles([configPath], async () => {
        const next = await loadConfigFile(configPath);
        if (!next.ok) {
          metrics.configReload('failure');
          logger.error({ errors: next.errors, revision: config.revision }, 'config reload rejected; keeping the last good config');
          return;
        }
        const previous = config.revision;
        config = next.compiled;
        metrics.configReload('success');
        metrics.configRevision(config.revision);
        logger.info({ revision: config.revision, previous }, 'config reloaded');
      }),
    );
  }
  watchers.push(
    await watchFiles([certPath, keyPath], async () => {
      const pair = await loadTlsPair(certPath, keyPath);
      if (!pair.ok) {
        metrics.tlsReload('failure');
        logger.error({ error: pair.error }, 'certificate reload rejected; keeping the current pair');
        return;
      }
      https.setTls(pair.pair);
      metrics.tlsReload('success');
      logger.info({ cert: certPath }, 'certificate reloaded');
    }),
  );
  // --patch-ca-bundle: written at start (startCluster) and whenever ca.crt changes, with the pair or on its own
  // (cert-manager rolls the CA before the leaf); a reload that leaves ca.crt as it was has nothing to write.
  if (cluster?.caBundle) watchers.push(await watchFiles([join(dirname(certPath), 'ca.crt')], async () => cluster.caBundle?.sync()));

  logger.info(
    { port: https.port, metricsPort: metricsListener?.port ?? null, host, config: configPath, revision: config.revision },
    'serving /mutate over HTTPS',
  );

  let shuttingDown: Promise<void> | undefined;
  return {
    port: https.port,
    metricsPort: metricsListener?.port,
    shutdown: () =>
      (shuttingDown ??= (async () => {
        ready = false;
        logger.info({ delaySeconds: shutdownDelayMs / 1000 }, 'shutting down: readiness off, still accepting during the delay');
        await sleep(shutdownDelayMs);
        for (const w of watchers) w.close();
        cluster?.stop();
        logger.info('no longer accepting; draining in-flight requests');
        const deadline = SHUTDOWN_BOUND_MS - shutdownDelayMs - 1000;
        await Promise.all([https.drain(deadline), metricsListener?.drain(deadline), cluster?.events?.close()]);
        logger.info('shut down');
      })()),
  };
}
