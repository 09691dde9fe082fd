/**
 * Whether a rollout is complete, by the test `kubectl rollout status` applies
 * (kubectl's polymorphichelpers/rollout_status.go: DeploymentStatusViewer,
 * StatefulSetStatusViewer, DaemonSetStatusViewer): the controller has
 * observed the latest generation, and every replica is updated and
 * available. Pure: the workload object in, a verdict and kubectl's wording out.
 */
export type RolloutKind = 'Deployment' | 'StatefulSet' | 'DaemonSet';
export const RESTARTABLE: readonly string[] = ['Deployment', 'StatefulSet', 'DaemonSet'];

export interface RolloutStatus {
  done: boolean;
  /** The rollout cannot complete (a Deployment past its progress deadline, an OnDelete strategy). */
  failed?: boolean;
  message: string;
}

interface Workload {
  metadata?: { generation?: number };
  spec?: {
    replicas?: number;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    readyReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
    conditions?: { type?: string; reason?: string }[];
  };
}

export function rolloutStatus(kind: RolloutKind, object: unknown): RolloutStatus {
  const w = object as Workload;
  const s = w.status ?? {};
  if ((w.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) return { done: false, message: 'waiting for the rollout to be observed' };
  switch (kind) {
    case 'Deployment': {
      if (s.conditions?.some((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded')) return { done: false, failed: true, message: 'exceeded its progress deadline' };
      const want = w.spec?.replicas ?? 1;
      const updated = s.updatedReplicas ?? 0;
      if (updated < want) return { done: false, message: `${updated} out of ${want} new replicas have been updated` };
      if ((s.replicas ?? 0) > updated) return { done: false, message: `${(s.replicas ?? 0) - updated} old replicas are pending termination` };
      if ((s.availableReplicas ?? 0) < updated) return { done: false, message: `${s.availableReplicas ?? 0} of ${updated} updated replicas are available` };
      return { done: true, message: 'successfully rolled out' };
    }
    case 'StatefulSet': {
      if (w.spec?.updateStrategy?.type === 'OnDelete') return { done: false, failed: true, message: 'rollout status is only available for RollingUpdate strategy type' };
      const want = w.spec?.replicas ?? 1;
      if ((s.readyReplicas ?? 0) < want) return { done: false, message: `${s.readyReplicas ?? 0} of ${want} pods are ready` };
      const partition = w.spec?.updateStrategy?.rollingUpdate?.partition;
      if (partition !== undefined && partition > 0) {
        const target = want - partition;
        if ((s.updatedReplicas ?? 0) < target) return { done: false, message: `${s.updatedReplicas ?? 0} of ${target} updated pods are ready` };
        return { done: true, message: `partitioned roll out complete: ${s.updatedReplicas ?? 0} new pods have been updated` };
      }
      if (s.updateRevision !== s.currentRevision) return { done: false, message: `${s.updatedReplicas ?? 0} pods at revision ${s.updateRevision ?? '?'}` };
      return { done: true, message: 'rolling update complete' };
    }
    case 'DaemonSet': {
      if (w.spec?.updateStrategy?.type === 'OnDelete') return { done: false, failed: true, message: 'rollout status is only available for RollingUpdate strategy type' };
      const desired = s.desiredNumberScheduled ?? 0;
      if ((s.updatedNumberScheduled ?? 0) < desired) return { done: false, message: `${s.updatedNumberScheduled ?? 0} out of ${desired} new pods have been updated` };
      if ((s.numberAvailable ?? 0) < desired) return { done: false, message: `${s.numberAvailable ?? 0} of ${desired} updated pods are available` };
      return { done: true, message: 'successfully rolled out' };
    }
  }
}
