/**
 * `audit --diff` (SPEC 2): what a workload's next pod would change, computed
 * from a pod it runs now. Pure.
 *
 * strip() removes what the injector added, by the pod's status annotation:
 * the containers, init containers and volumes it lists, the mounts of those
 * volumes in the remaining containers (appVolumeMounts), and the annotation.
 * The token mounts it gave injected containers go with them. What the API
 * server or the kubelet set (status, nodeName, defaults, the token volume and
 * its name) stays as it is in the running pod, so re-injecting the stripped
 * pod with the same core as the webhook and comparing with the running pod
 * shows only what the injection would change.
 *
 * A pod whose injected parts were edited after admission (the annotation
 * names a container or volume that is gone, or is not JSON) is reported as
 * edited, not diffed.
 */
import { isDeepStrictEqual } from 'node:util';
import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { admitPod, type PodContext } from './admit.js';
import type { CompiledConfig } from './config.js';
import type { InjectionStatus } from './inject.js';

/** What the status annotation says was added (its revision does not matter here). */
type RecordedParts = Omit<InjectionStatus, 'revision'>;

export type Stripped = { ok: true; pod: V1Pod; status: RecordedParts | undefined } | { ok: false; edited: string };

const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function readStatus(raw: string): RecordedParts | string {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return 'the status annotation is not JSON';
  }
  if (parsed === null || typeof parsed !== 'object') return 'the status annotation is not a JSON object';
  return {
    profiles: names(parsed.profiles),
    containers: names(parsed.containers),
    initContainers: names(parsed.initContainers),
    volumes: names(parsed.volumes),
  };
}

/** The pod without what the injector added, as the webhook received it (plus what the API server set since). */
export function strip(pod: V1Pod, statusKey: string): Stripped {
  const raw = pod.metadata?.annotations?.[statusKey];
  if (raw === undefined) return { ok: true, pod, status: undefined };
  const status = readStatus(raw);
  if (typeof status === 'string') return { ok: false, edited: status };
  const spec = pod.spec ?? { containers: [] };
  const missing = (kind: string, listed: string[], present: { name?: string }[] | undefined) =>
    listed.filter((n) => !(present ?? []).some((x) => x.name === n)).map((n) => `${kind} ${n} is gone`);
  const gone = [
    ...missing('container', status.containers, spec.containers),
    ...missing('init container', status.initContainers, spec.initContainers),
    ...missing('volume', status.volumes, spec.volumes),
  ];
  if (gone.length > 0) return { ok: false, edited: `injected parts were changed after admission: ${gone.join(', ')}` };

  const ours = new Set(status.volumes);
  const withoutOurMounts = (c: V1Container): V1Container => {
    if (!c.volumeMounts?.some((m) => ours.has(m.name))) return c;
    const volumeMounts = c.volumeMounts.filter((m) => !ours.has(m.name));
    const rest = { ...c };
    if (volumeMounts.length > 0) rest.volumeMounts = volumeMounts;
    else delete rest.volumeMounts;
    return rest;
  };
  const keep = <T extends { name?: string }>(list: T[] | undefined, drop: string[]): T[] | undefined => list?.filter((x) => !drop.includes(x.name ?? ''));
  const containers = (keep(spec.containers, status.containers) ?? []).map(withoutOurMounts);
  const initContainers = keep(spec.initContainers, status.initContainers)?.map(withoutOurMounts);
  const volumes = keep(spec.volumes, status.volumes);

  const annotations = Object.fromEntries(Object.entries(pod.metadata?.annotations ?? {}).filter(([k]) => k !== statusKey));
  const nextSpec = { ...spec, containers };
  // A list we emptied was made by the injection (or held nothing but its parts): it goes, as it came.
  if (initContainers) nextSpec.initContainers = initContainers;
  if (initContainers?.length === 0 && status.initContainers.length > 0) delete nextSpec.initContainers;
  if (volumes) nextSpec.volumes = volumes;
  if (volumes?.length === 0 && status.volumes.length > 0) delete nextSpec.volumes;
  const metadata = { ...pod.metadata };
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  else delete metadata.annotations;
  return { ok: true, pod: { ...pod, metadata, spec: nextSpec }, status };
}

/** What a pod's injection consists of, as compared: the parts the injector touches. */
export interface InjectionView {
  profiles: string[];
  initContainers: V1Container[];
  containers: V1Container[];
  volumes: V1Volume[];
}

function viewOf(pod: V1Pod, profiles: string[]): InjectionView {
  return { profiles, initContainers: pod.spec?.initContainers ?? [], containers: pod.spec?.containers ?? [], volumes: pod.spec?.volumes ?? [] };
}

/**
 * One top-level field of a part that differs, with its value on each side:
 * the very values the table's unified diff prints (taken from the two views,
 * not computed again). A side without the field has no value (absent in JSON).
 */
export interface FieldChange {
  field: string;
  before?: unknown;
  after?: unknown;
}

interface NamedChange {
  name: string;
  /** Top-level fields that differ (image, args, env, resources, ports, volumeMounts, securityContext…). */
  fields: string[];
  /** The same fields, in the same order, with their values before and after. */
  changes: FieldChange[];
}

export interface ListChange<T> {
  /** Names of the parts the next pod gains, and loses. */
  added: string[];
  removed: string[];
  /** Those parts whole, in the same order. */
  addedValues: T[];
  removedValues: T[];
  changed: NamedChange[];
}

/** An app container whose mounts change (appVolumeMounts). */
export interface AppMountChange {
  container: string;
  /** The mounts gained and lost, as `name:mountPath`. */
  added: string[];
  removed: string[];
  /** Those mounts whole, in the same order. */
  addedValues: V1VolumeMount[];
  removedValues: V1VolumeMount[];
  /** The container's volumeMounts before and after (one entry: the field that changes). */
  changes: FieldChange[];
}

export interface PodChange {
  /** The injection would change nothing. */
  none: boolean;
  profiles: { before: string[]; after: string[] };
  containers: ListChange<V1Container>;
  initContainers: ListChange<V1Container>;
  volumes: ListChange<V1Volume>;
  /** App containers whose mounts change (appVolumeMounts). */
  appMounts: AppMountChange[];
}

const fieldChange = (field: string, before: unknown, after: unknown): FieldChange => ({
  field,
  ...(before === undefined ? {} : { before }),
  ...(after === undefined ? {} : { after }),
});

/** The top-level fields of `before` and `after` that differ, sorted, with both values. */
function fieldChanges(before: object, after: object): FieldChange[] {
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  return [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .filter((k) => !isDeepStrictEqual(b[k], a[k]))
    .sort()
    .map((field) => fieldChange(field, b[field], a[field]));
}

function listChange<T extends { name?: string }>(before: T[], after: T[]): ListChange<T> {
  const byName = (list: T[]) => new Map(list.map((x) => [x.name ?? '', x]));
  const b = byName(before);
  const a = byName(after);
  const changed: NamedChange[] = [];
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y) continue;
    const changes = fieldChanges(y, x);
    if (changes.length > 0) changed.push({ name, fields: changes.map((c) => c.field), changes });
  }
  const addedValues = [...a.values()].filter((x) => !b.has(x.name ?? ''));
  const removedValues = [...b.values()].filter((x) => !a.has(x.name ?? ''));
  const nameOf = (x: T) => x.name ?? '';
  return { added: addedValues.map(nameOf), removed: removedValues.map(nameOf), addedValues, removedValues, changed };
}

const mountName = (m: V1VolumeMount) => `${m.name}:${m.mountPath}`;

/** An app container's mount changes, or undefined when it keeps its mounts. */
function appMountChange(before: V1Container, after: V1Container): AppMountChange | undefined {
  const was = before.volumeMounts ?? [];
  const is = after.volumeMounts ?? [];
  const keys = (list: V1VolumeMount[]) => new Set(list.map(mountName));
  const [wasKeys, isKeys] = [keys(was), keys(is)];
  const addedValues = is.filter((m) => !wasKeys.has(mountName(m)));
  const removedValues = was.filter((m) => !isKeys.has(mountName(m)));
  if (addedValues.length + removedValues.length === 0) return undefined;
  return {
    container: after.name,
    added: addedValues.map(mountName),
    removed: removedValues.map(mountName),
    addedValues,
    removedValues,
    changes: [fieldChange('volumeMounts', before.volumeMounts, after.volumeMounts)],
  };
}

/** The difference between the running pod and the pod its workload would get next. */
export function podChange(running: InjectionView, next: InjectionView, appContainers: ReadonlySet<string>): PodChange {
  // App containers: only their mounts are ours to change; reported apart.
  const containers = listChange(running.containers, next.containers);
  containers.changed = containers.changed.filter((c) => !appContainers.has(c.name));
  const appMounts = next.containers
    .filter((c) => appContainers.has(c.name))
    .map((c) => appMountChange(running.containers.find((x) => x.name === c.name) ?? { name: c.name }, c))
    .filter((m): m is AppMountChange => m !== undefined);
  const initContainers = listChange(running.initContainers, next.initContainers);
  const volumes = listChange(running.volumes, next.volumes);
  const profiles = { before: running.profiles, after: next.profiles };
  const empty = (l: ListChange<unknown>) => l.added.length + l.removed.length + l.changed.length === 0;
  const none = empty(containers) && empty(initContainers) && empty(volumes) && appMounts.length === 0 && isDeepStrictEqual(profiles.before, profiles.after);
  return { none, profiles, containers, initContainers, volumes, appMounts };
}

export type NextPod =
  | { kind: 'diff'; running: InjectionView; next: InjectionView; change: PodChange }
  | { kind: 'edited'; reason: string }
  /** The rules would not inject it now (skipped, or a conflict): the reason. */
  | { kind: 'not-injected'; reason: string };

/** Strip, re-inject with the config in force, compare with the running pod. */
export function nextPod(running: V1Pod, ctx: PodContext, compiled: CompiledConfig): NextPod {
  const stripped = strip(running, compiled.keys.status);
  if (!stripped.ok) return { kind: 'edited', reason: stripped.edited };
  const outcome = admitPod(stripped.pod, ctx, compiled);
  if (outcome.decision === 'conflict' || outcome.decision === 'denied') return { kind: 'not-injected', reason: outcome.reason };
  if (outcome.decision !== 'injected' && stripped.status === undefined) return { kind: 'not-injected', reason: outcome.reason };
  // Injected now and next time, or injected once and not any more (the next pod is the stripped one).
  const before = viewOf(running, stripped.status?.profiles ?? []);
  const next = outcome.decision === 'injected' ? viewOf(outcome.pod, outcome.profiles) : viewOf(stripped.pod, []);
  return { kind: 'diff', running: before, next, change: podChange(before, next, appNames(stripped.pod)) };
}

const appNames = (pod: V1Pod) => new Set((pod.spec?.containers ?? []).map((c) => c.name));
