/**
 * The audit's judgement of running pods (SPEC 2 `audit`), with the webhook's
 * own rules: pure. The edge (src/kube/audit.ts) pages through the pods and
 * resolves owners; this module says what each pod is and what to do.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from './admit.js';
import type { CompiledConfig } from './config.js';
import type { ServerFeatures } from './inject.js';
import type { NextPod } from './pod-diff.js';
import { tenantVerdict, type TenantProfiles } from './tenant-profile.js';

/**
 * missed: the rules would inject and it has no sidecars; stale: injected under another config revision, or
 * with a tenant profile that has changed or is no longer accepted; orphaned: injected with a tenant profile
 * that no longer exists; conflict: the rules would inject but cannot.
 */
export type PodState = 'missed' | 'stale' | 'orphaned' | 'conflict' | 'injected' | 'fine';
export const PROBLEM_STATES = ['missed', 'stale', 'orphaned', 'conflict'] as const;

export interface PodVerdict {
  state: PodState;
  reason: string;
}

const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

export function classifyPod(
  pod: V1Pod,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  compiled: CompiledConfig,
  server: ServerFeatures,
  tenants?: TenantProfiles,
): PodVerdict {
  const annotations = pod.metadata?.annotations ?? {};
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return { state: 'fine', reason: `pod has ${phase.toLowerCase()}` };
  // Static pods: the kubelet's mirror of a manifest on the node; no webhook can change what runs.
  if (annotations[MIRROR_ANNOTATION] !== undefined) return { state: 'fine', reason: 'static pod (mirror)' };

  const namespace = pod.metadata?.namespace ?? '';
  const status = annotations[compiled.keys.status];
  if (status !== undefined) {
    let recorded: { revision?: unknown; generations?: unknown };
    try {
      recorded = JSON.parse(status) as typeof recorded;
    } catch {
      return { state: 'stale', reason: 'status annotation is not JSON' };
    }
    const { revision } = recorded;
    if (revision !== compiled.revision) return { state: 'stale', reason: `injected with revision ${String(revision)}, config is ${compiled.revision}` };
    return tenantState(recorded.generations, namespace, namespaceLabels, compiled, tenants) ?? { state: 'injected', reason: 'injected with the config in force' };
  }

  const outcome = admitPod(pod, { namespace, namespaceLabels, server, tenantProfiles: tenants }, compiled);
  switch (outcome.decision) {
    case 'injected':
      return { state: 'missed', reason: `${outcome.reason}, but it has no sidecars (${outcome.profiles.join(',')})` };
    case 'conflict':
    case 'denied':
      return { state: 'conflict', reason: outcome.reason };
    default:
      return { state: 'fine', reason: outcome.reason };
  }
}

/**
 * SPEC 9: a pod injected with a tenant profile (`namespace/name` → generation in the status annotation)
 * is orphaned when the profile is gone, stale when it changed or is no longer accepted. Without an
 * index of SidecarProfiles (tenants undefined) nothing is known of them: no verdict.
 */
function tenantState(
  generations: unknown,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  compiled: CompiledConfig,
  tenants: TenantProfiles | undefined,
): PodVerdict | undefined {
  if (tenants === undefined || generations === null || typeof generations !== 'object') return undefined;
  for (const [key, generation] of Object.entries(generations)) {
    const name = key.slice(key.indexOf('/') + 1);
    const t = key.startsWith(`${namespace}/`) ? tenants.get(name) : undefined;
    if (!t) return { state: 'orphaned', reason: `tenant profile ${key} no longer exists` };
    if (t.generation !== generation) return { state: 'stale', reason: `tenant profile ${key} changed (generation ${String(generation)}, now ${t.generation})` };
    const verdict = tenantVerdict(t, namespaceLabels, compiled);
    if (!verdict.accepted) return { state: 'stale', reason: `tenant profile ${key} is no longer accepted (${verdict.reason})` };
  }
  return undefined;
}

/** The workload a user acts on: a Deployment rather than its ReplicaSet, a CronJob rather than its Job. */
export interface Workload {
  namespace: string;
  kind: string;
  name: string;
}

/** The command that recreates a workload's pods, so the webhook sees them again. */
export function remedy(w: Workload, state: PodState, reason: string): string {
  if (state === 'conflict') return `resolve the conflict (${reason}), then recreate the pods`;
  switch (w.kind) {
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
      return `kubectl rollout restart ${w.kind.toLowerCase()}/${w.name} -n ${w.namespace}`;
    case 'CronJob':
      return `its next run is injected; or kubectl create job --from=cronjob/${w.name} -n ${w.namespace}`;
    case 'Job':
      return `recreate job/${w.name} -n ${w.namespace} (a Job's pod template cannot change)`;
    case 'Pod':
      return `kubectl delete pod ${w.name} -n ${w.namespace}, and create it again`;
    default:
      return `kubectl delete pods of ${w.kind.toLowerCase()}/${w.name} -n ${w.namespace}; its controller recreates them`;
  }
}

export interface WorkloadFinding extends Workload {
  state: Exclude<PodState, 'fine' | 'injected'>;
  pods: number;
  /** Up to three pod names, for a human to look at. */
  examples: string[];
  reason: string;
  action: string;
  /** audit --diff: what the next pod would change, from the first pod of the workload found (`examples[0]`). */
  next?: NextPod;
}

export type AuditCounts = Record<Exclude<PodState, 'fine'>, number> & { pods: number };

/** Accumulates verdicts without keeping pods: memory grows with the number of problem workloads, not of pods. */
export class AuditReport {
  readonly counts: AuditCounts = { pods: 0, missed: 0, stale: 0, orphaned: 0, conflict: 0, injected: 0 };
  private readonly findings = new Map<string, WorkloadFinding>();

  /** `next`, when given, is asked once per finding, for its first pod (audit --diff). */
  add(podName: string, workload: Workload, verdict: PodVerdict, next?: () => NextPod): void {
    this.counts.pods += 1;
    if (verdict.state === 'fine') return;
    this.counts[verdict.state] += 1;
    if (verdict.state === 'injected') return;
    const key = `${workload.namespace}/${workload.kind}/${workload.name}/${verdict.state}`;
    let f = this.findings.get(key);
    if (!f) {
      f = { ...workload, state: verdict.state, pods: 0, examples: [], reason: verdict.reason, action: remedy(workload, verdict.state, verdict.reason) };
      if (next && verdict.state !== 'conflict') f.next = next();
      this.findings.set(key, f);
    }
    f.pods += 1;
    if (f.examples.length < 3) f.examples.push(podName);
  }

  /** Problems first by state (missed, stale, orphaned, conflict), then by namespace and workload. */
  workloads(): WorkloadFinding[] {
    const order = { missed: 0, stale: 1, orphaned: 2, conflict: 3 };
    return [...this.findings.values()].sort(
      (a, b) => order[a.state] - order[b.state] || a.namespace.localeCompare(b.namespace) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name),
    );
  }

  /** Exit 1 when anything is missed, stale or orphaned (conflicts are reported, not failed on: the pod runs as its owner asked). */
  get failing(): boolean {
    return this.counts.missed > 0 || this.counts.stale > 0 || this.counts.orphaned > 0;
  }
}
