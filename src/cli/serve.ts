/**
 * `serve`: wires config, TLS, metrics, file watching and shutdown around the
 * app. Returns a handle; main.ts owns the process and its signals.
 */
import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RequestListener } from 'node:http';
import type { CompiledConfig } from '../core/config.js';
import { UNKNOWN_SERVER, type ServerFeatures } from '../core/inject.js';
import { featuresOf, type KubeVersion } from '../core/kube-version.js';
import { connectCluster, type KubeClient } from '../kube/client.js';
import { BUILTIN_CONFIG_PATH, configOf } from '../config/load.js';
import { watchExpiry, type ExpiryWatch } from '../ops/cert-expiry.js';
import { createMetrics, type Metrics } from '../ops/metrics.js';
import { fileOf, readFiles, watchFiles, type FileSnapshot, type FileWatcher } from '../ops/watch.js';
import { createApp } from '../server/app.js';
import { listenHttp, listenHttps, type HttpsListener, type Listener } from '../server/listen.js';
import { createMetricsApp } from '../server/metrics-app.js';
import { generateCertificates, writeCertificates } from '../tls/generate.js';
import { tlsPairOf, type TlsPair } from '../tls/load.js';
import { durationFlag, intFlag, kubeVersionFlag, UsageError, type FlagSpecs, type ParsedFlags } from './args.js';
import { startCluster, type ClusterFeatures } from './cluster.js';
import { servePolicy } from './serve-policy.js';
import { StartupError } from './startup-error.js';

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
  'lease-duration': { type: 'string', env: true, default: '15', help: 'seconds a replica Lease counts without renewal (--patch-ca-bundle; renewed every third of it)' },
  'webhook-config': { type: 'string', env: true, help: 'MutatingWebhookConfiguration whose matchConditions follow the config (API servers 1.28+)' },
  events: { type: 'boolean', env: true, help: 'record Kubernetes Events for admissions (default on with a cluster)' },
  'no-events': { type: 'boolean', help: 'do not record Events' },
  'kube-version': { type: 'string', env: true, help: 'Kubernetes version X.Y to assume instead of asking the API server (nativeSidecar: auto)' },
  policy: { type: 'string', env: true, help: 'policy mode: keep the MutatingAdmissionPolicies NAME and NAME-namespaces in step with the config (proven on canary pods first); no /mutate, no TLS' },
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

export { StartupError };

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

/** Build the parts, then start them: settings → config → TLS → cluster → listeners → file watchers. */
export async function serve(flags: ParsedFlags, logger: Logger, options: ServeOptions): Promise<ServeHandle> {
  const s = readSettings(flags);
  if (flags.policy !== undefined) return servePolicyMode(s, flags, logger, options);
  const metrics = createMetrics();
  const config = await loadConfig(s, metrics);
  const tls = await loadTls(s, flags['dev-certs'] === true, logger);
  const expiry = watchExpiry({ logger, gauge: metrics.certificateExpiry });
  expiry.inForce(tls.pair.cert);
  const cluster = await connect(s, flags, options, logger, metrics, config);
  let ready = true;
  const isReady = () => ready;
  const listeners = await listen(s, tls.pair, buildApp(s, config, cluster, logger, metrics, isReady), () =>
    createMetricsApp(metrics.registry, isReady, cluster?.notReady),
  );
  const watchers = await watchConfigAndTls(s, config, tls.files, listeners.https, cluster, expiry, logger, metrics);
  logger.info(
    { port: listeners.https.port, metricsPort: listeners.metrics?.port ?? null, host: s.host, config: s.configPath, revision: config.current.revision },
    'serving /mutate over HTTPS',
  );
  let shuttingDown: Promise<void> | undefined;
  return {
    port: listeners.https.port,
    metricsPort: listeners.metrics?.port,
    shutdown: () =>
      (shuttingDown ??= (async () => {
        ready = false;
        expiry.stop();
        await drain(s, listeners, watchers, cluster, logger);
      })()),
  };
}

/** --policy NAME: no /mutate and no TLS; the policies kept in step with the config (serve-policy.ts). */
async function servePolicyMode(s: Settings, flags: ParsedFlags, logger: Logger, options: ServeOptions): Promise<ServeHandle> {
  const name = flags.policy as string;
  if (!/^[a-z0-9]([-a-z0-9.]{0,230}[a-z0-9])?$/.test(name)) throw new UsageError(`--policy: "${name}" is not a valid object name`);
  if (s.caBundleName || s.webhookConfig) throw new UsageError('--policy goes without --patch-ca-bundle and --webhook-config: there is no webhook');
  const h = await servePolicy(
    { name, configPath: s.configPath, watchConfig: s.watchConfig, metricsPort: s.metricsPort, host: s.host, kubeVersion: s.kubeVersion, auditIntervalMs: s.auditIntervalMs },
    flags,
    options.env,
    logger,
    options.leanClientNode,
  );
  return { port: 0, metricsPort: h.metricsPort, shutdown: h.shutdown };
}

/** The flags serve acts on, read and checked once. */
interface Settings {
  port: number;
  metricsPort: number;
  host: string;
  shutdownDelayMs: number;
  /** --config, or the built-in example (not watched). */
  configPath: string;
  watchConfig: boolean;
  certPath: string;
  keyPath: string;
  /** ca.crt beside the serving pair, as cert-manager and `certs` lay it out. */
  caPath: string;
  kubeVersion: KubeVersion | undefined;
  auditIntervalMs: number | undefined;
  caBundleName: string | undefined;
  leaseDurationSeconds: number;
  webhookConfig: string | undefined;
}

function readSettings(flags: ParsedFlags): Settings {
  const certPath = flags['tls-cert'] as string;
  return {
    port: intFlag(flags, 'port', 0, 65535),
    metricsPort: intFlag(flags, 'metrics-port', 0, 65535),
    host: flags.host as string,
    shutdownDelayMs: secondsFlag(flags, 'shutdown-delay'),
    configPath: (flags.config as string | undefined) ?? BUILTIN_CONFIG_PATH,
    watchConfig: flags.config !== undefined,
    certPath,
    keyPath: flags['tls-key'] as string,
    caPath: join(dirname(certPath), 'ca.crt'),
    kubeVersion: kubeVersionFlag(flags['kube-version'] as string | undefined),
    auditIntervalMs: durationFlag('audit-interval', flags['audit-interval'] as string | undefined),
    caBundleName: flags['patch-ca-bundle'] as string | undefined,
    leaseDurationSeconds: intFlag(flags, 'lease-duration', 3, 3600),
    webhookConfig: flags['webhook-config'] as string | undefined,
  };
}

/** The config in force: one reference, swapped whole, so an admission never sees a half-loaded config. */
interface ConfigHolder {
  current: CompiledConfig;
  /** The bytes it was loaded from at start: the watcher's baseline. */
  files: FileSnapshot;
}

async function loadConfig(s: Settings, metrics: Metrics): Promise<ConfigHolder> {
  const files = await readFiles([s.configPath]);
  const loaded = configOf(fileOf(files, s.configPath));
  if (!loaded.ok) throw new StartupError(loaded.errors);
  metrics.configRevision(loaded.compiled.revision);
  return { current: loaded.compiled, files };
}

async function loadTls(s: Settings, devCerts: boolean, logger: Logger): Promise<{ pair: TlsPair; files: FileSnapshot }> {
  if (devCerts && !(await exists(s.certPath)) && !(await exists(s.keyPath))) {
    const dir = dirname(s.certPath);
    if (dirname(s.keyPath) !== dir) throw new StartupError(['--dev-certs needs --tls-cert and --tls-key in one directory']);
    await writeCertificates(dir, await generateCertificates({ service: 'sidecar-injector', namespace: 'default', dev: true, days: 365 }));
    logger.info({ dir }, 'created development certificates (CA in ca.crt)');
  }
  const files = await readFiles([s.certPath, s.keyPath]);
  const tls = tlsPairOf(fileOf(files, s.certPath), fileOf(files, s.keyPath));
  if (!tls.ok) throw new StartupError([tls.error]);
  return { pair: tls.pair, files };
}

async function connect(
  s: Settings,
  flags: ParsedFlags,
  options: ServeOptions,
  logger: Logger,
  metrics: Metrics,
  config: ConfigHolder,
): Promise<ClusterFeatures | undefined> {
  let client: KubeClient | undefined;
  try {
    client = await connectCluster({ kubeconfig: flags.kubeconfig as string | undefined, env: options.env, lean: options.leanClientNode });
  } catch (err) {
    throw new StartupError([(err as Error).message]);
  }
  if (!client) {
    if (s.caBundleName) throw new StartupError(['--patch-ca-bundle needs cluster access (--kubeconfig, or running in a pod)']);
    if (s.auditIntervalMs) throw new StartupError(['--audit-interval needs cluster access (--kubeconfig, or running in a pod)']);
    if (s.webhookConfig) throw new StartupError(['--webhook-config needs cluster access (--kubeconfig, or running in a pod)']);
    logger.info('no cluster access (no --kubeconfig, not in a pod): namespace labels (rule 7), --patch-ca-bundle and events are off');
    return undefined;
  }
  return startCluster(client, {
    flags,
    logger,
    metrics,
    kubeVersion: s.kubeVersion,
    caPath: s.caPath,
    certPath: s.certPath,
    auditIntervalMs: s.auditIntervalMs,
    config: () => config.current,
    webhookConfig: s.webhookConfig,
    leaseDurationSeconds: s.leaseDurationSeconds,
    env: options.env,
  });
}

function buildApp(s: Settings, config: ConfigHolder, cluster: ClusterFeatures | undefined, logger: Logger, metrics: Metrics, ready: () => boolean) {
  // Without a cluster, support is what --kube-version says, or unknown.
  const noCluster: ServerFeatures = s.kubeVersion ? featuresOf(s.kubeVersion) : UNKNOWN_SERVER;
  return createApp({
    config: () => config.current,
    namespaceLabels: cluster ? (ns) => cluster.namespaces.labels(ns) : () => undefined,
    lookupNamespace: cluster ? (ns) => cluster.namespaces.lookup(ns) : undefined,
    tenantProfiles: cluster?.tenantProfiles,
    server: cluster ? cluster.server : () => noCluster,
    recordEvent: cluster?.events ? (e) => cluster.events?.record(e) : undefined,
    logger,
    now: () => performance.now(),
    ready,
    notReady: cluster?.notReady,
    onAdmission: metrics.admission,
  });
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'no such address on this machine',
};

/** A port that cannot be had is one line naming the flag, not a stack. */
async function listenFor<T extends Listener>(flag: string, port: number, host: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StartupError([`--${flag} ${port}: cannot listen on ${host}:${port}: ${LISTEN_ERRORS[e.code ?? ''] ?? e.message}`]);
  }
}

interface Listeners {
  https: HttpsListener;
  metrics: Listener | undefined;
}

async function listen(s: Settings, tls: TlsPair, app: RequestListener, metricsApp: () => RequestListener): Promise<Listeners> {
  const https = await listenFor('port', s.port, s.host, () => listenHttps(app, { port: s.port, host: s.host, tls }));
  if (s.metricsPort === 0) return { https, metrics: undefined };
  try {
    return { https, metrics: await listenFor('metrics-port', s.metricsPort, s.host, () => listenHttp(metricsApp(), { port: s.metricsPort, host: s.host })) };
  } catch (err) {
    await https.drain(0);
    throw err;
  }
}

/**
 * Config and TLS reloads (SPEC 7), and --patch-ca-bundle's trigger. Each reload loads the bytes the
 * watcher compared, once per change (ops/watch.ts), from the bytes loaded at start on.
 */
async function watchConfigAndTls(
  s: Settings,
  config: ConfigHolder,
  tlsFiles: FileSnapshot,
  https: HttpsListener,
  cluster: ClusterFeatures | undefined,
  expiry: ExpiryWatch,
  logger: Logger,
  metrics: Metrics,
): Promise<FileWatcher[]> {
  const watchers: FileWatcher[] = [];
  if (s.watchConfig) {
    watchers.push(
      await watchFiles(
        [s.configPath],
        async (files) => {
          const inForce = reloadConfig(s, files, config, logger, metrics);
          if (inForce) cluster?.configChanged();
          return inForce;
        },
        { inForce: config.files, onRestored: () => logger.info({ revision: config.current.revision }, 'config file is back to the config in force; nothing to reload') },
      ),
    );
  }
  watchers.push(
    await watchFiles([s.certPath, s.keyPath], (files) => reloadTls(s, files, https, cluster, expiry, logger, metrics), {
      inForce: tlsFiles,
      onRestored: () => logger.info({ cert: s.certPath }, 'certificate files are back to the pair in force; nothing to reload'),
    }),
  );
  // --patch-ca-bundle: written at start (startCluster) and whenever ca.crt changes, with the pair or on its own
  // (cert-manager rolls the CA before the leaf); a reload that leaves ca.crt as it was has nothing to write.
  if (cluster?.caBundle) {
    const writer = cluster.caBundle;
    watchers.push(
      await watchFiles([s.caPath], async () => {
        writer.sync();
        return true;
      }),
    );
  }
  return watchers;
}

/** True when a new config is in force. */
function reloadConfig(s: Settings, files: FileSnapshot, config: ConfigHolder, logger: Logger, metrics: Metrics): boolean {
  const next = configOf(fileOf(files, s.configPath));
  if (!next.ok) {
    metrics.configReload('failure');
    logger.error({ errors: next.errors, revision: config.current.revision }, 'config reload rejected; keeping the last good config');
    return false;
  }
  const previous = config.current.revision;
  config.current = next.compiled;
  metrics.configReload('success');
  metrics.configRevision(config.current.revision);
  logger.info({ revision: config.current.revision, previous }, 'config reloaded');
  return true;
}

/** Serve the new pair after this long even if the caBundle could not be written (the old one may be about to expire). */
const TRUST_BOUND_MS = 60_000;

/** True when the new pair is served. */
async function reloadTls(
  s: Settings,
  files: FileSnapshot,
  https: HttpsListener,
  cluster: ClusterFeatures | undefined,
  expiry: ExpiryWatch,
  logger: Logger,
  metrics: Metrics,
): Promise<boolean> {
  const pair = tlsPairOf(fileOf(files, s.certPath), fileOf(files, s.keyPath));
  if (!pair.ok) {
    metrics.tlsReload('failure');
    logger.error({ error: pair.error }, 'certificate reload rejected; keeping the current pair');
    return false;
  }
  // Trust before serve: a certificate signed by a new CA is served only once the API server uses a caBundle that
  // trusts that CA (shown by a probe, bounded: ca-bundle.ts).
  const writer = cluster?.caBundle;
  if (writer) {
    if (!(await writer.ensureTrusted(TRUST_BOUND_MS))) logger.error({ afterMs: TRUST_BOUND_MS }, 'caBundle not confirmed; serving the new certificate anyway');
    else await writer.whenInUse();
  }
  https.setTls(pair.pair);
  writer?.inForce();
  expiry.inForce(pair.pair.cert);
  metrics.tlsReload('success');
  logger.info({ cert: s.certPath }, 'certificate reloaded');
  return true;
}

/** Readiness is already off: keep accepting for the delay, then stop, drain and close. */
async function drain(s: Settings, listeners: Listeners, watchers: FileWatcher[], cluster: ClusterFeatures | undefined, logger: Logger): Promise<void> {
  logger.info({ delaySeconds: s.shutdownDelayMs / 1000 }, 'shutting down: readiness off, still accepting during the delay');
  await sleep(s.shutdownDelayMs);
  for (const w of watchers) w.close();
  cluster?.stop();
  logger.info('no longer accepting; draining in-flight requests');
  const deadline = SHUTDOWN_BOUND_MS - s.shutdownDelayMs - 1000;
  await Promise.all([listeners.https.drain(deadline), listeners.metrics?.drain(deadline), cluster?.events?.close()]);
  // Served nothing more: the other replicas may stop trusting our CA now rather than when our Lease expires.
  await cluster?.caBundle?.release();
  logger.info('shut down');
}
