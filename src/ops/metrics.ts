/** Prometheus metrics (SPEC section 7), on a registry of our own: nothing global, nothing at import. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PodDecision } from '../core/admit.js';
import { PROBLEM_STATES, type AuditCounts } from '../core/audit.js';
import type { TenantReason } from '../core/tenant-profile.js';
import type { ProfilePolicyWriteResult } from '../kube/profile-policy-writer.js';

export type AdmissionDecision = PodDecision | 'error';
export type ReloadResult = 'success' | 'failure';

const DECISIONS: AdmissionDecision[] = ['injected', 'skipped', 'unchanged', 'conflict', 'denied', 'error'];

export type NamespaceWatchRestart = 'closed' | 'expired' | 'error';

export interface Metrics {
  registry: Registry;
  namespaceCacheSynced(synced: boolean): void;
  namespaceWatchRestart(reason: NamespaceWatchRestart): void;
  namespaceLookup(result: 'fetched' | 'failed'): void;
  sidecarProfilesSynced(synced: boolean): void;
  sidecarProfileWatchRestart(reason: NamespaceWatchRestart): void;
  sidecarProfileStatusWrite(result: 'written' | 'conflict' | 'failure'): void;
  sidecarProfiles(counts: Record<TenantReason, number>): void;
  caBundle(result: 'patched' | 'unchanged' | 'failure' | 'unconfirmed'): void;
  caTrust(trusted: boolean, cas: number): void;
  policyWrite(result: 'promoted' | 'unchanged' | 'rejected' | 'failure'): void;
  profilePolicyWrite(result: ProfilePolicyWriteResult): void;
  matchConditions(result: 'patched' | 'unchanged' | 'rejected' | 'unsupported' | 'failure'): void;
  event(result: 'created' | 'updated' | 'dropped' | 'failed'): void;
  auditResult(counts: AuditCounts): void;
  auditFailed(): void;
  admission(decision: AdmissionDecision, seconds: number): void;
  configReload(result: ReloadResult): void;
  tlsReload(result: ReloadResult): void;
  certificateExpiry(notAfter: Date): void;
  configRevision(revision: string): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const admissions = new Counter({
    name: 'sidecar_injector_admissions_total',
    help: 'Admission requests answered on /mutate, by decision (error: bad request or internal failure).',
    labelNames: ['decision'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'sidecar_injector_admission_duration_seconds',
    help: 'Time from request to answer on /mutate, body parsing included.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const configReloads = new Counter({
    name: 'sidecar_injector_config_reloads_total',
    help: 'Config file reloads after start, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const tlsReloads = new Counter({
    name: 'sidecar_injector_tls_reloads_total',
    help: 'Certificate reloads after start, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const certificateExpiry = new Gauge({
    name: 'sidecar_injector_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the serving certificate in force, in seconds since the epoch.',
    registers: [registry],
  });
  const revision = new Gauge({
    name: 'sidecar_injector_config_revision',
    help: 'The config revision in force (label), always 1.',
    labelNames: ['revision'],
    registers: [registry],
  });

  const cacheSynced = new Gauge({
    name: 'sidecar_injector_namespace_cache_synced',
    help: 'Whether the namespace label cache has listed the namespaces once (1) or not (0, also without a cluster).',
    registers: [registry],
  });
  const watchRestarts = new Counter({
    name: 'sidecar_injector_namespace_watch_restarts_total',
    help: 'Namespace watch restarts, by reason: closed (by the server), expired (410 Gone, relisted), error (backed off).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const lookups = new Counter({
    name: 'sidecar_injector_namespace_lookups_total',
    help: 'Direct reads of namespaces the cache had not seen, by result; failed ones decide the pod without namespace labels.',
    labelNames: ['result'],
    registers: [registry],
  });
  const profilesSynced = new Gauge({
    name: 'sidecar_injector_sidecarprofiles_synced',
    help: 'Whether the SidecarProfile index has listed the profiles once, or learnt that the CRD is not installed (1), or not (0, also without a cluster).',
    registers: [registry],
  });
  const profileWatchRestarts = new Counter({
    name: 'sidecar_injector_sidecarprofile_watch_restarts_total',
    help: 'SidecarProfile watch restarts, by reason: closed (by the server), expired (410 Gone, relisted), error (backed off).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const profileStatusWrites = new Counter({
    name: 'sidecar_injector_sidecarprofile_status_writes_total',
    help: 'Writes of the SidecarProfile Accepted condition (only when it differs), by result: written, conflict (read again and retried), failure (retried with backoff).',
    labelNames: ['result'],
    registers: [registry],
  });
  const profiles = new Gauge({
    name: 'sidecar_injector_sidecarprofiles',
    help: 'SidecarProfiles by the reason of their Accepted condition as this replica judges them: Accepted (served), NotServed, Shadowed, Invalid, OutsideLimits.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const caBundles = new Counter({
    name: 'sidecar_injector_ca_bundle_writes_total',
    help: 'caBundle checks of --patch-ca-bundle, by result: patched, unchanged (already equal), failure (retried), unconfirmed (the API server did not show within the bound that it uses a bundle trusting this replica; it went on).',
    labelNames: ['result'],
    registers: [registry],
  });
  const caTrusted = new Gauge({
    name: 'sidecar_injector_ca_trusted',
    help: 'Whether the caBundle (at the last check by --patch-ca-bundle) trusts the CA this replica serves with and the one it is about to: 1 or 0.',
    // Exported only by replicas that write the caBundle (registered at the first check), so 0 always means a problem.
    registers: [],
  });
  const caBundleCas = new Gauge({
    name: 'sidecar_injector_ca_bundle_cas',
    help: 'CAs in the caBundle at the last check by --patch-ca-bundle (the union of what the live replicas serve with and trust).',
    registers: [],
  });
  const matchConditions = new Counter({
    name: 'sidecar_injector_match_conditions_writes_total',
    help: 'matchConditions checks of --webhook-config, by result: patched, unchanged, rejected (by the API server; removed so every pod is sent), unsupported (dropped by the API server), failure (retried).',
    labelNames: ['result'],
    registers: [registry],
  });
  const profilePolicyWrites = new Counter({
    name: 'sidecar_injector_profile_policy_writes_total',
    help: 'Checks of the SidecarProfile ValidatingAdmissionPolicy compiled from tenantProfiles, by result: applied, unchanged, removed (tenant profiles off), unsupported (API server before 1.30), rejected, failure (retried).',
    labelNames: ['result'],
    registers: [registry],
  });
  const policyWrites = new Counter({
    name: 'sidecar_injector_policy_writes_total',
    help: 'serve --policy: policy checks by result: promoted (proven on canary pods, then applied), unchanged, rejected (cannot be compiled, or failed on canary pods: the policies in force stay), failure (retried).',
    labelNames: ['result'],
    registers: [registry],
  });
  const events = new Counter({
    name: 'sidecar_injector_events_total',
    help: 'Kubernetes Events, by result: created, updated (aggregated count), dropped (queue full), failed.',
    labelNames: ['result'],
    registers: [registry],
  });

  const pods = new Gauge({
    name: 'sidecar_injector_pods',
    help: 'Pods by state at the last audit (--audit-interval): missed, stale, conflict, injected.',
    labelNames: ['state'],
    registers: [registry],
  });
  const audits = new Counter({
    name: 'sidecar_injector_audit_runs_total',
    help: 'Audit runs (--audit-interval), by result.',
    labelNames: ['result'],
    registers: [registry],
  });

  // Every series exists from the start, so rate() and alerts see zeros rather than gaps.
  for (const d of DECISIONS) admissions.inc({ decision: d }, 0);
  for (const r of ['success', 'failure']) {
    configReloads.inc({ result: r }, 0);
    tlsReloads.inc({ result: r }, 0);
  }

  cacheSynced.set(0);
  for (const r of ['success', 'failure']) audits.inc({ result: r }, 0);
  for (const r of ['closed', 'expired', 'error']) watchRestarts.inc({ reason: r }, 0);
  for (const r of ['fetched', 'failed']) lookups.inc({ result: r }, 0);
  profilesSynced.set(0);
  for (const r of ['closed', 'expired', 'error']) profileWatchRestarts.inc({ reason: r }, 0);
  for (const r of ['written', 'conflict', 'failure']) profileStatusWrites.inc({ result: r }, 0);
  for (const r of ['patched', 'unchanged', 'failure', 'unconfirmed']) caBundles.inc({ result: r }, 0);
  for (const r of ['patched', 'unchanged', 'rejected', 'unsupported', 'failure']) matchConditions.inc({ result: r }, 0);
  for (const r of ['created', 'updated', 'dropped', 'failed']) events.inc({ result: r }, 0);
  for (const r of ['promoted', 'unchanged', 'rejected', 'failure']) policyWrites.inc({ result: r }, 0);
  for (const r of ['applied', 'unchanged', 'removed', 'unsupported', 'rejected', 'failure']) profilePolicyWrites.inc({ result: r }, 0);

  return {
    registry,
    namespaceCacheSynced: (synced) => cacheSynced.set(synced ? 1 : 0),
    namespaceWatchRestart: (reason) => watchRestarts.inc({ reason }),
    namespaceLookup: (result) => lookups.inc({ result }),
    sidecarProfilesSynced: (synced) => profilesSynced.set(synced ? 1 : 0),
    sidecarProfileWatchRestart: (reason) => profileWatchRestarts.inc({ reason }),
    sidecarProfileStatusWrite: (result) => profileStatusWrites.inc({ result }),
    sidecarProfiles: (counts) => {
      for (const [reason, n] of Object.entries(counts)) profiles.set({ reason }, n);
    },
    caBundle: (result) => caBundles.inc({ result }),
    policyWrite: (result) => policyWrites.inc({ result }),
    profilePolicyWrite: (result) => profilePolicyWrites.inc({ result }),
    caTrust: (trusted, cas) => {
      if (!registry.getSingleMetric('sidecar_injector_ca_trusted')) {
        registry.registerMetric(caTrusted);
        registry.registerMetric(caBundleCas);
      }
      caTrusted.set(trusted ? 1 : 0);
      caBundleCas.set(cas);
    },
    matchConditions: (result) => matchConditions.inc({ result }),
    event: (result) => events.inc({ result }),
    auditResult: (counts) => {
      for (const state of [...PROBLEM_STATES, 'injected'] as const) pods.set({ state }, counts[state]);
      audits.inc({ result: 'success' });
    },
    auditFailed: () => audits.inc({ result: 'failure' }),
    admission: (decision, seconds) => {
      admissions.inc({ decision });
      duration.observe(seconds);
    },
    configReload: (result) => configReloads.inc({ result }),
    tlsReload: (result) => tlsReloads.inc({ result }),
    certificateExpiry: (notAfter) => certificateExpiry.set(Math.floor(notAfter.getTime() / 1000)),
    configRevision: (rev) => {
      revision.reset();
      revision.set({ revision: rev }, 1);
    },
  };
}
