/**
 * The Kubernetes Event an admission deserves (SPEC 7), as data. Pure: the
 * recorder (src/kube/events.ts) aggregates, rate-limits and writes them.
 * At admission the pod has no uid (and often no name), so the event goes on
 * its controlling owner, or on its namespace for a bare pod. Messages name
 * the pod by generateName, so every pod of one ReplicaSet aggregates into
 * one event with a count.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { PodOutcome } from './admit.js';
import type { CompiledConfig } from './config.js';
import { readWish } from './decide.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface PodEvent {
  /** The namespace the Event is written to: the pod's. */
  namespace: string;
  involvedObject: EventTarget;
  type: 'Normal' | 'Warning';
  reason: 'Injected' | 'InjectionSkipped' | 'InjectionConflict' | 'InjectionDenied';
  message: string;
}

/** events.k8s.io/v1 caps a note at 1 KiB; core/v1 messages are kept within the same bound. */
const MAX_MESSAGE = 1024;

export function podEvent(pod: V1Pod, namespace: string, outcome: PodOutcome, compiled: CompiledConfig): PodEvent | undefined {
  const podName = pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`;
  let type: PodEvent['type'] = 'Warning';
  let reason: PodEvent['reason'];
  let message: string;
  switch (outcome.decision) {
    case 'injected':
      type = 'Normal';
      reason = 'Injected';
      message = `injected sidecar profiles ${outcome.profiles.join(',')} into pod ${podName}`;
      break;
    case 'skipped': {
      const wish = readWish(pod, compiled.keys.inject).kind;
      if (wish !== 'true' && wish !== 'profiles') return undefined; // only a pod that asked hears about a skip
      reason = 'InjectionSkipped';
      message = `pod ${podName} asked for sidecars and got none: ${outcome.reason}`;
      break;
    }
    case 'conflict':
      reason = 'InjectionConflict';
      message = `pod ${podName} created without sidecars: ${outcome.reason}`;
      break;
    case 'denied':
      reason = 'InjectionDenied';
      message = `pod ${podName} denied: ${outcome.reason}`;
      break;
    default:
      return undefined;
  }
  const owners = pod.metadata?.ownerReferences ?? [];
  const owner = owners.find((o) => o.controller) ?? owners[0];
  const involvedObject: EventTarget = owner
    ? { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, namespace, uid: owner.uid }
    : { apiVersion: 'v1', kind: 'Namespace', name: namespace, namespace };
  return { namespace, involvedObject, type, reason, message: message.slice(0, MAX_MESSAGE) };
}
