/**
 * What `serve` runs when it has a cluster: the namespace label cache, the
 * SidecarProfile index and its status writer, the native-sidecar probe, the
 * caBundle writer and the event recorder, each in the background. Nothing
 * here is on the admission path except the cache's bounded read of a
 * namespace it has not seen.
 */
import type { Logger } from 'pino';
import { UNKNOWN_SERVER, type ServerFeatures } from '../core/inject.js';
import { featuresOf, formatVersion, type KubeVersion } from '../core/kube-version.js';
import type { CompiledConfig } from '../core/config.js';
import type { WebhookScope } from '../core/scope.js';
import { matchConditionsFor } from '../core/match-conditions.js';
import { findWebhookScope, runAudit } from '../kube/audit.js';
import { CaBundleWriter } from '../kube/ca-bundle.js';
import type { KubeClient } from '../kube/client.js';
import { ReplicaLease, replicaIdentity } from '../kube/replica-lease.js';
import { EventRecorder } from '../kube/events.js';
import { detectServerFeatures } from '../kube/features.js';
import { MatchConditionsWriter } from '../kube/match-conditions.js';
import { ProfilePolicyWriter } from '../kube/profile-policy-writer.js';
import { NamespaceCache } from '../kube/namespaces.js';
import { ProfileStatusWriter } from '../kube/profile-status.js';
import { SidecarProfileIndex } from '../kube/sidecar-profiles.js';
import type { TenantProfileLookup } from '../core/tenant-profile.js';
import type { Metrics } from '../ops/metrics.js';
import type { ParsedFlags } from './args.js';

export interface ClusterFeatures {
  namespaces: NamespaceCache;
  /** SidecarProfiles of every namespace (SPEC 9), listed and watched. */
  sidecarProfiles: SidecarProfileIndex;
  /** For MutateContext.tenantProfiles: the index's synchronous lookup. */
  tenantProfiles: TenantProfileLookup;
  /** Writes each SidecarProfile's Accepted condition; re-judges on configChanged(). */
  profileStatus: ProfileStatusWriter;
  /** Native sidecar support: unknown until the probe answers. */
  server(): ServerFeatures;
  events: EventRecorder | undefined;
  caBundle: CaBundleWriter | undefined;
  /** The config was reloaded: bring what is derived from it (matchConditions, SidecarProfile status) in step. */
  configChanged(): void;
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
  /** tls.crt: the caBundle keeps its issuer trusted. */
  certPath?: string;
  syncBoundMs?: number;
  /** --audit-interval: run the audit this often (ms). */
  auditIntervalMs?: number;
  /** The config in force, read at each audit and matchConditions write. */
  config: () => CompiledConfig;
  /** --webhook-config: the MutatingWebhookConfiguration whose matchConditions follow the config. */
  webhookConfig?: string;
  /** --lease-duration: how long a replica's Lease counts without renewal (s). */
  leaseDurationSeconds?: number;
  /** POD_NAME, POD_NAMESPACE: who this replica is. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Build the parts, then start them: namespace cache → feature probe → events → caBundle → audit loop. */
export function startCluster(client: KubeClient, opts: ClusterOptions): ClusterFeatures {
  const { flags, metrics } = opts;
  const log = opts.logger.child({ component: 'cluster' });
  log.info({ server: client.server, config: client.source }, 'cluster access');

  const namespaces = new NamespaceCache({
    client,
    logger: log,
    events: { synced: metrics.namespaceCacheSynced, watchRestart: metrics.namespaceWatchRestart, lookup: metrics.namespaceLookup },
  });
  void namespaces.run();
  const sidecarProfiles = new SidecarProfileIndex({
    client,
    logger: log,
    events: { synced: metrics.sidecarProfilesSynced, watchRestart: metrics.sidecarProfileWatchRestart },
  });
  void sidecarProfiles.run();
  const profileStatus = new ProfileStatusWriter({
    client,
    logger: log,
    index: sidecarProfiles,
    config: opts.config,
    namespaceLabels: (ns) => namespaces.lookup(ns),
    onWrite: metrics.sidecarProfileStatusWrite,
    onVerdicts: metrics.sidecarProfiles,
  });
  // A relabelled namespace may enter or leave tenantProfiles.namespaceSelector.
  namespaces.onChange((ns) => profileStatus.namespaceChanged(ns));
  profileStatus.start();
  // The write-time check of SidecarProfiles, compiled from the limits in force (named after the release, as the chart's RBAC allows).
  const profilePolicy = opts.webhookConfig
    ? new ProfilePolicyWriter({ client, name: opts.webhookConfig, kubeVersion: opts.kubeVersion, logger: log, onResult: metrics.profilePolicyWrite })
    : undefined;
  profilePolicy?.start(opts.config());
  const conditions = opts.webhookConfig ? matchConditionsWriter(client, opts.webhookConfig, opts, log) : undefined;
  const features = probeFeatures(client, opts.kubeVersion, log, (server) => {
    if (!conditions) return;
    if (server.matchConditions) conditions.start();
    else log.info('the API server has no webhook matchConditions (before 1.28): every pod in scope is sent');
  });
  const events = flags['no-events'] !== true && flags.events !== false ? new EventRecorder({ client, logger: log, onResult: metrics.event }) : undefined;
  const caBundleName = flags['patch-ca-bundle'] as string | undefined;
  const caBundle = caBundleName ? caBundleWriter(client, caBundleName, opts, log) : undefined;
  caBundle?.start();
  const audit = opts.auditIntervalMs
    ? startAuditLoop(client, opts.auditIntervalMs, {
        logger: log,
        metrics,
        config: opts.config,
        server: features.server,
        namespaceLabels: (ns) => namespaces.labels(ns),
        // The configuration's selectors, read each time: an upgrade may have changed them.
        scope: async () => {
          const found = await findWebhookScope(client, opts.webhookConfig);
          if (!found.ok && !found.none) log.warn({ problem: found.problem }, 'audit counts every pod the rules would inject');
          return found.ok ? found.webhooks : undefined;
        },
      })
    : undefined;

  // Served only when the config enables them: then readiness also waits (bounded) for the first list of SidecarProfiles.
  const profilesNeeded = () => opts.config().config.tenantProfiles.enabled;
  return {
    namespaces,
    sidecarProfiles,
    tenantProfiles: sidecarProfiles.lookup,
    profileStatus,
    server: features.server,
    events,
    caBundle,
    notReady: readiness(namespaces, sidecarProfiles, profilesNeeded, features.probed, caBundle, opts.syncBoundMs ?? 30_000, log),
    configChanged: () => {
      if (features.server().matchConditions) conditions?.sync();
      profileStatus.configChanged();
      profilePolicy?.update(opts.config());
    },
    stop: () => {
      features.stop();
      conditions?.stop();
      audit?.stop();
      profileStatus.stop();
      profilePolicy?.stop();
      sidecarProfiles.stop();
      namespaces.stop();
      caBundle?.stop();
    },
  };
}

interface FeatureProbe {
  server(): ServerFeatures;
  /** The first attempt has answered (readiness waits for it, not for success). */
  probed(): boolean;
  stop(): void;
}

/** Native sidecar support: from --kube-version, else asked of /version and OpenAPI, retried in the background until it answers. */
function probeFeatures(client: KubeClient, kubeVersion: KubeVersion | undefined, log: Logger, onKnown: (server: ServerFeatures) => void): FeatureProbe {
  if (kubeVersion) {
    const server = featuresOf(kubeVersion);
    log.info({ kubeVersion: formatVersion(kubeVersion), ...server }, 'server features from --kube-version');
    onKnown(server);
    return { server: () => server, probed: () => true, stop: () => undefined };
  }
  let server: ServerFeatures = UNKNOWN_SERVER;
  let probed = false;
  let stopped = false;
  void (async () => {
    for (let attempt = 1; !stopped; attempt += 1) {
      const found = await detectServerFeatures(client);
      probed = true;
      if (found.version !== 'unknown') {
        server = found.features;
        log.info({ version: found.version, ...server, how: found.how }, 'server features');
        onKnown(server);
        return;
      }
      if (attempt === 1) log.warn({ how: found.how }, 'server features unknown until the API server answers: nativeSidecar auto injects regular containers, true stays native');
      await new Promise((resolve) => setTimeout(resolve, Math.min(300_000, 1000 * 2 ** attempt)).unref());
    }
  })();
  return { server: () => server, probed: () => probed, stop: () => (stopped = true) };
}

/** --webhook-config: matchConditions of the config in force, written by the replicas. */
function matchConditionsWriter(client: KubeClient, name: string, opts: ClusterOptions, log: Logger): MatchConditionsWriter {
  return new MatchConditionsWriter({
    client,
    name,
    logger: log,
    onResult: opts.metrics.matchConditions,
    desired: () => {
      const config = opts.config();
      return { conditions: matchConditionsFor(config), namespaceLabel: config.keys.namespaceInjection, revision: config.revision };
    },
  });
}

export interface AuditLoopOptions {
  logger: Logger;
  metrics: Metrics;
  config: () => CompiledConfig;
  server: () => ServerFeatures;
  /** Which pods the API server sends us (undefined: the rules alone decide), asked at each run. */
  scope: () => Promise<WebhookScope[] | undefined>;
  /** serve's namespace cache; without it each run lists the namespaces. */
  namespaceLabels?: (namespace: string) => Readonly<Record<string, string>> | undefined;
}

/** --audit-interval: the audit in the server, exported as sidecar_injector_pods{state}. */
export function startAuditLoop(client: KubeClient, interval: number, opts: AuditLoopOptions): { stop(): void } {
  const { logger: log, metrics } = opts;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const audit = async () => {
    const started = Date.now();
    try {
      const report = await runAudit({ client, config: opts.config(), server: opts.server(), namespaceLabels: opts.namespaceLabels, scope: await opts.scope() });
      metrics.auditResult(report.counts);
      log.info({ ...report.counts, durationMs: Date.now() - started }, 'audit');
    } catch (err) {
      metrics.auditFailed();
      log.warn({ err: (err as Error).message }, 'audit failed');
    }
    if (!stopped) timer = setTimeout(() => void audit(), interval);
  };
  // The first run waits for the cache, so it sees namespace labels.
  timer = setTimeout(() => void audit(), Math.min(interval, 30_000));
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * /readyz: not ready until the cache has synced, the SidecarProfiles have been listed (when tenant profiles
 * are enabled), the probe has answered once and (with --patch-ca-bundle) the API server trusts the CA this
 * replica serves with, or until the bound has passed.
 */
function readiness(
  namespaces: NamespaceCache,
  profiles: SidecarProfileIndex,
  profilesNeeded: () => boolean,
  probed: () => boolean,
  caBundle: CaBundleWriter | undefined,
  boundMs: number,
  log: Logger,
): () => string | undefined {
  const started = Date.now();
  let gaveUpWaiting = false;
  return () => {
    const trusted = caBundle ? caBundle.trusted() : true;
    const profilesSynced = profiles.synced || !profilesNeeded();
    if (gaveUpWaiting || (namespaces.synced && profilesSynced && probed() && trusted)) return undefined;
    if (Date.now() - started >= boundMs) {
      gaveUpWaiting = true;
      if (!namespaces.synced) log.warn({ afterMs: boundMs, featuresKnown: probed() }, 'ready without a synced namespace cache; rule 7 runs on direct reads');
      if (!profilesSynced) log.warn({ afterMs: boundMs }, 'ready without the SidecarProfiles listed: pods that ask for one are admitted without it until they are');
      if (!trusted) log.error({ afterMs: boundMs }, 'ready although the caBundle does not trust this replica\'s CA yet: admissions it answers may fail until it does');
      return undefined;
    }
    if (!namespaces.synced) return 'namespace cache not synced';
    if (!profilesSynced) return 'SidecarProfiles not listed';
    return !probed() ? 'probing the API server' : 'caBundle does not trust this replica\'s CA yet';
  };
}

/** --patch-ca-bundle: the caBundle writer, with this replica's Lease in its namespace. */
function caBundleWriter(client: KubeClient, name: string, opts: ClusterOptions, log: Logger): CaBundleWriter {
  const durationSeconds = opts.leaseDurationSeconds ?? 15;
  const identity = replicaIdentity(opts.env ?? {});
  log.info({ lease: `${identity.namespace}/${identity.name}`, durationSeconds }, 'replica Lease for the caBundle');
  return new CaBundleWriter({
    client,
    name,
    caPath: opts.caPath,
    certPath: opts.certPath,
    lease: new ReplicaLease({ client, identity, webhookConfiguration: name, durationSeconds }),
    resyncMs: (durationSeconds * 1000) / 3,
    logger: log,
    onResult: opts.metrics.caBundle,
    onTrust: opts.metrics.caTrust,
  });
}
