/**
 * What `serve` runs when it has a cluster: the namespace label cache, the
 * native-sidecar probe, the caBundle writer and the event recorder, each in
 * the background. Nothing here is on the admission path except the cache's
 * bounded read of a namespace it has not seen.
 */
import type { Logger } from 'pino';
import { UNKNOWN_SERVER, type ServerFeatures } from '../core/inject.js';
import { featuresOf, formatVersion, type KubeVersion } from '../core/kube-version.js';
import type { CompiledConfig } from '../core/config.js';
import { runAudit } from '../kube/audit.js';
import { CaBundleWriter } from '../kube/ca-bundle.js';
import type { KubeClient } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { detectServerFeatures } from '../kube/features.js';
import { NamespaceCache } from '../kube/namespaces.js';
import type { Metrics } from '../ops/metrics.js';
import type { ParsedFlags } from './args.js';

export interface ClusterFeatures {
  namespaces: NamespaceCache;
  /** Native sidecar support: unknown until the probe answers. */
  server(): ServerFeatures;
  events: EventRecorder | undefined;
  caBundle: CaBundleWriter | undefined;
  /** Why /readyz is not ready yet, or undefined; bounded by syncBoundMs. */
  notReady(): string | undefined;
  stop(): void;
}

export interface ClusterOptions {
  flags: ParsedFlags;
  logger: Logger;
  metrics: Metrics;
  /** --kube-version: skips the probe. */
  kubeVersion: KubeVersion | undefined;
  caPath: string;
  syncBoundMs?: number;
  /** --audit-interval: run the audit this often (ms). */
  auditIntervalMs?: number;
  /** The config in force, read at each audit. */
  config: () => CompiledConfig;
}

export function startCluster(client: KubeClient, opts: ClusterOptions): ClusterFeatures {
  const { flags, logger, metrics } = opts;
  const log = logger.child({ component: 'cluster' });
  log.info({ server: client.server, config: client.source }, 'cluster access');
  const started = Date.now();
  const bound = opts.syncBoundMs ?? 30_000;
  let stopped = false;

  const namespaces = new NamespaceCache({
    client,
    logger: log,
    events: { synced: metrics.namespaceCacheSynced, watchRestart: metrics.namespaceWatchRestart, lookup: metrics.namespaceLookup },
  });
  void namespaces.run();

  let server: ServerFeatures = UNKNOWN_SERVER;
  let probed = false;
  if (opts.kubeVersion) {
    server = featuresOf(opts.kubeVersion);
    probed = true;
    log.info({ kubeVersion: formatVersion(opts.kubeVersion), nativeSidecars: server.nativeSidecars }, 'server features from --kube-version');
  } else {
    void (async () => {
      // /version unreachable: retried until it answers; readiness waits for the first attempt only.
      for (let attempt = 1; !stopped; attempt += 1) {
        const found = await detectServerFeatures(client);
        probed = true;
        if (found.version !== 'unknown') {
          server = found.features;
          log.info({ version: found.version, nativeSidecars: server.nativeSidecars, how: found.how }, 'server features');
          return;
        }
        if (attempt === 1) log.warn({ how: found.how }, 'server features unknown until the API server answers: nativeSidecar auto injects regular containers, true stays native');
        await new Promise((resolve) => setTimeout(resolve, Math.min(300_000, 1000 * 2 ** attempt)).unref());
      }
    })();
  }

  const eventsOn = flags['no-events'] !== true && flags.events !== false;
  const events = eventsOn ? new EventRecorder({ client, logger: log, onResult: metrics.event }) : undefined;

  const caBundleName = flags['patch-ca-bundle'] as string | undefined;
  const caBundle = caBundleName ? new CaBundleWriter({ client, name: caBundleName, caPath: opts.caPath, logger: log, onResult: metrics.caBundle }) : undefined;
  caBundle?.sync();

  let auditTimer: NodeJS.Timeout | undefined;
  if (opts.auditIntervalMs) {
    const interval = opts.auditIntervalMs;
    const audit = async () => {
      const started = Date.now();
      try {
        const report = await runAudit({ client, config: opts.config(), server, namespaceLabels: (ns) => namespaces.labels(ns) });
        metrics.auditResult(report.counts);
        log.info({ ...report.counts, durationMs: Date.now() - started }, 'audit');
      } catch (err) {
        metrics.auditFailed();
        log.warn({ err: (err as Error).message }, 'audit failed');
      }
      if (!stopped) auditTimer = setTimeout(() => void audit(), interval);
    };
    // The first run waits for the cache, so it sees namespace labels.
    auditTimer = setTimeout(() => void audit(), Math.min(interval, 30_000));
  }

  let gaveUpWaiting = false;
  return {
    namespaces,
    server: () => server,
    events,
    caBundle,
    notReady: () => {
      if (gaveUpWaiting || (namespaces.synced && probed)) return undefined;
      if (Date.now() - started >= bound) {
        gaveUpWaiting = true;
        log.warn({ afterMs: bound, namespacesSynced: namespaces.synced, featuresKnown: probed }, 'ready without a synced namespace cache; rule 7 runs on direct reads');
        return undefined;
      }
      return namespaces.synced ? 'probing the API server' : 'namespace cache not synced';
    },
    stop: () => {
      stopped = true;
      clearTimeout(auditTimer);
      namespaces.stop();
      caBundle?.stop();
    },
  };
}
