/**
 * kube-apiserver's mutating admission of a Pod CREATE, as far as it decides
 * how often a `reinvocationPolicy: IfNeeded` webhook is called. Written from
 * the Kubernetes sources, independently of src/:
 *
 * - k8s.io/apiserver/pkg/admission/chain.go and reinvocation.go
 *   (reinvocationHandler.Admit): the mutating chain runs once; if any webhook
 *   changed the object, it runs a second time, in-tree plugins included.
 * - k8s.io/apiserver/pkg/admission/plugin/webhook/mutating/dispatcher.go and
 *   reinvocationcontext.go: in that second run a webhook that was called
 *   before is called again only if the object differs from the output of the
 *   last webhook invocation (IsOutputChangedSinceLastWebhookInvocation).
 *   The webhook's patched object is decoded with defaulting before it is
 *   compared (the dispatcher's ObjectDefaulter).
 * - plugin/pkg/admission/serviceaccount/admission.go (Admit,
 *   mountServiceAccountToken, shouldAutomount): in-tree, before webhooks.
 * - pkg/apis/core/v1/defaults.go: the defaulting (apiServerDefaults below).
 *
 * LimitRanger (another in-tree plugin that can change a pod) is not modelled:
 * the tests' namespaces have no LimitRange.
 */
import type { V1Container, V1Pod, V1Probe, V1Volume } from '@kubernetes/client-node';

/** The API server compares decoded objects (apiequality.Semantic.DeepEqual): key order and object realms do not matter. */
function sameObject(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** serviceaccount/admission.go: DefaultAPITokenMountPath, ServiceAccountVolumeName. */
export const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_VOLUME = 'kube-api-access';

/** What the ServiceAccount object says (the plugin reads it from its informer). */
export interface ServiceAccount {
  automountServiceAccountToken?: boolean;
}

let generated = 0;
/** The plugin's generateName: a random 5-character suffix (names.SimpleNameGenerator). */
function randomSuffix(): string {
  generated += 1;
  return `r${String(generated).padStart(4, '0')}`.slice(-5);
}

/** The projected volume the plugin adds (serviceaccount/admission.go TokenVolumeSource), as the API server stores it. */
export function serviceAccountTokenVolume(name: string): V1Volume {
  return {
    name,
    projected: {
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
      defaultMode: 420,
    },
  };
}

/** serviceaccount/admission.go Admit → mountServiceAccountToken, for a pod that is not a mirror pod. */
export function serviceAccountPlugin(input: V1Pod, sa: ServiceAccount = {}): V1Pod {
  const pod = structuredClone(input);
  const spec = pod.spec!;
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) return pod;
  spec.serviceAccountName ||= 'default';
  // shouldAutomount: the pod's field wins, then the ServiceAccount's; default true.
  const automount = spec.automountServiceAccountToken ?? sa.automountServiceAccountToken ?? true;
  if (!automount) return pod;
  let tokenVolumeName = '';
  let hasTokenVolume = false;
  for (const v of spec.volumes ?? []) {
    if (v.name.startsWith(`${TOKEN_VOLUME}-`)) {
      tokenVolumeName = v.name;
      hasTokenVolume = true;
      break;
    }
  }
  if (tokenVolumeName === '') tokenVolumeName = `${TOKEN_VOLUME}-${randomSuffix()}`;
  const mount = { name: tokenVolumeName, readOnly: true, mountPath: TOKEN_PATH };
  let needsTokenVolume = false;
  // Init containers first, then containers (ephemeral containers are not set on CREATE).
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (!(c.volumeMounts ?? []).some((m) => m.mountPath === TOKEN_PATH)) {
      c.volumeMounts = [...(c.volumeMounts ?? []), { ...mount }];
      needsTokenVolume = true;
    }
  }
  if (!hasTokenVolume && needsTokenVolume) spec.volumes = [...(spec.volumes ?? []), serviceAccountTokenVolume(tokenVolumeName)];
  return pod;
}

/** pkg/apis/core/v1/defaults.go for what a pod's containers and volumes carry, written as a table. */
export function apiServerDefaults(pod: V1Pod): V1Pod {
  const out = structuredClone(pod);
  const probe = (p?: V1Probe) => {
    if (!p) return;
    p.timeoutSeconds ||= 1;
    p.periodSeconds ||= 10;
    p.successThreshold ||= 1;
    p.failureThreshold ||= 3;
    if (p.httpGet) {
      p.httpGet.path ||= '/';
      p.httpGet.scheme ||= 'HTTP';
    }
  };
  const container = (c: V1Container) => {
    const image = c.image ?? '';
    const last = image.split('/').pop() ?? '';
    const tagged = last.includes(':') && !last.split('@')[0]!.endsWith(':latest');
    c.imagePullPolicy ||= tagged || image.includes('@') ? 'IfNotPresent' : 'Always';
    c.terminationMessagePath ||= '/dev/termination-log';
    c.terminationMessagePolicy ||= 'File';
    for (const p of c.ports ?? []) p.protocol ||= 'TCP';
    for (const e of c.env ?? []) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion ||= 'v1';
    probe(c.livenessProbe);
    probe(c.readinessProbe);
    probe(c.startupProbe);
    // SetDefaults_HTTPGetAction applies wherever an HTTPGetAction is, lifecycle handlers included.
    for (const handler of [c.lifecycle?.postStart, c.lifecycle?.preStop]) {
      if (handler?.httpGet) {
        handler.httpGet.path ||= '/';
        handler.httpGet.scheme ||= 'HTTP';
      }
    }
    if (c.resources?.limits) c.resources.requests = { ...c.resources.limits, ...c.resources.requests };
  };
  for (const c of [...(out.spec?.containers ?? []), ...(out.spec?.initContainers ?? [])]) container(c);
  for (const v of out.spec?.volumes ?? []) {
    for (const source of [v.secret, v.configMap, v.downwardAPI, v.projected]) if (source) source.defaultMode ??= 420;
    if (v.hostPath) v.hostPath.type ??= ''; // SetDefaults_HostPathVolumeSource: HostPathUnset
  }
  return out;
}

/** The webhook as the dispatcher sees it: the object in, the patched object out (or the same object). */
export type Webhook = (pod: V1Pod) => Promise<V1Pod>;

export interface ChainResult {
  /** How many times the webhook was called for this one CREATE. */
  calls: number;
  /** The object as it would be stored (before validation). */
  pod: V1Pod;
}

/**
 * One Pod CREATE through the mutating chain: in-tree plugins, then our
 * webhook; if it changed the object, the chain again, the webhook called
 * again only if the object changed since its last output.
 */
export async function admitPodCreate(submitted: V1Pod, webhook: Webhook, sa: ServiceAccount = {}): Promise<ChainResult> {
  let pod = serviceAccountPlugin(apiServerDefaults(submitted), sa);
  let calls = 0;
  const callWebhook = async (input: V1Pod) => {
    calls += 1;
    return apiServerDefaults(await webhook(input));
  };
  let lastOutput = await callWebhook(pod);
  const changed = !sameObject(lastOutput, pod);
  pod = lastOutput;
  if (!changed) return { calls, pod };
  // reinvocation.go: the whole chain once more, in-tree plugins first.
  pod = serviceAccountPlugin(pod, sa);
  if (!sameObject(pod, lastOutput)) {
    lastOutput = await callWebhook(pod);
    pod = lastOutput;
  }
  return { calls, pod };
}
