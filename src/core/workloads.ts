/**
 * Offline injection into manifests: a bare Pod, or the pod template of a
 * workload, goes through admitPod() exactly as a pod created from it would.
 * Pure: objects in, objects and outcomes out.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { CompiledConfig } from './config.js';
import { admitPod, type PodOutcome } from './admit.js';
import type { ServerFeatures } from './inject.js';
import { podShapeProblem } from './review.js';
import type { TenantProfileLookup } from './tenant-profile.js';

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Where each kind keeps the pod it creates. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export type WorkloadResult =
  | { kind: 'passed'; object: unknown }
  | { kind: 'admitted'; object: unknown; outcome: PodOutcome; where: string }
  | { kind: 'invalid'; error: string };

function getPath(obj: Obj, path: string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) cur = isObject(cur) ? cur[key] : undefined;
  return cur;
}

/** A copy of `obj` with `value` at `path`, sharing everything else. */
function setPath(obj: Obj, path: string[], value: unknown): Obj {
  const [head, ...rest] = path as [string, ...string[]];
  return { ...obj, [head]: rest.length === 0 ? value : setPath(obj[head] as Obj, rest, value) };
}

export interface WorkloadContext {
  /** Used when the object has no metadata.namespace. */
  namespace: string;
  namespaceLabels: Readonly<Record<string, string>> | undefined;
  server: ServerFeatures;
  /** SidecarProfiles (SPEC 9) by namespace, as the cluster would serve them. */
  tenantProfiles?: TenantProfileLookup;
}

export function injectWorkload(object: unknown, ctx: WorkloadContext, config: CompiledConfig): WorkloadResult {
  if (!isObject(object)) return { kind: 'passed', object };
  const kind = typeof object.kind === 'string' ? object.kind : '';
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : ctx.namespace;
  const podCtx = { namespace, namespaceLabels: ctx.namespaceLabels, server: ctx.server, tenantProfiles: ctx.tenantProfiles?.(namespace) };

  if (kind === 'Pod') {
    const problem = podShapeProblem(object, 'Pod');
    if (problem) return { kind: 'invalid', error: problem };
    const outcome = admitPod(object as V1Pod, podCtx, config);
    return { kind: 'admitted', object: outcome.decision === 'injected' ? outcome.pod : object, outcome, where: 'Pod' };
  }

  const path = TEMPLATE_PATHS[kind];
  if (!path) return { kind: 'passed', object };
  const where = `${kind}.${path.join('.')}`;
  const template = getPath(object, path);
  if (!isObject(template)) return { kind: 'invalid', error: `${where}: missing or not an object` };
  // The pod a controller creates from this template: the template's metadata and spec.
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: template.metadata ?? {}, spec: template.spec };
  const problem = podShapeProblem(pod, where);
  if (problem) return { kind: 'invalid', error: problem };
  const outcome = admitPod(pod as V1Pod, podCtx, config);
  if (outcome.decision !== 'injected') return { kind: 'admitted', object, outcome, where };
  const newTemplate = { ...template, metadata: outcome.pod.metadata, spec: outcome.pod.spec };
  return { kind: 'admitted', object: setPath(object, path, newTemplate), outcome, where };
}
