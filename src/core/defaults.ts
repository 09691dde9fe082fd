/**
 * The values kube-apiserver defaults on what we inject (pkg/apis/core/v1
 * defaults.go: SetDefaults_Container, _ContainerPort, _Probe,
 * _HTTPGetAction, _ObjectFieldSelector, _SecretVolumeSource and friends, and
 * SetDefaults_Pod's "requests default to limits").
 *
 * Why: the API server decodes our patched pod with defaulting. If that
 * changes the object, `reinvocationPolicy: IfNeeded` calls the webhook a
 * second time for every injected pod. Writing the defaults ourselves leaves
 * nothing to default, so the second call does not happen. Only absent
 * fields are filled; nothing the profile says is changed. Pure.
 */
import type { V1Container, V1HTTPGetAction, V1Probe, V1Volume } from '@kubernetes/client-node';

/** core/v1 TerminationMessagePathDefault and TerminationMessageReadFile. */
const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
const TERMINATION_MESSAGE_POLICY = 'File';
/** 0644, the default mode of secret, configMap, downwardAPI and projected volumes. */
const DEFAULT_FILE_MODE = 420;

/** The tag kube-apiserver reads from an image reference (docker's ParseImageName): "latest" when there is neither tag nor digest. */
export function imageTag(image: string): string {
  const at = image.indexOf('@');
  const name = at === -1 ? image : image.slice(0, at);
  const lastSlash = name.lastIndexOf('/');
  const colon = name.indexOf(':', lastSlash + 1);
  if (colon !== -1) return name.slice(colon + 1);
  return at === -1 ? 'latest' : '';
}

export function defaultPullPolicy(image: string): string {
  return imageTag(image) === 'latest' ? 'Always' : 'IfNotPresent';
}

function httpGet(h: V1HTTPGetAction | undefined): V1HTTPGetAction | undefined {
  if (!h || (h.path && h.scheme)) return h;
  return { ...h, path: h.path || '/', scheme: h.scheme || 'HTTP' };
}

function probe(p: V1Probe | undefined): V1Probe | undefined {
  if (!p) return p;
  return {
    ...p,
    ...(p.httpGet ? { httpGet: httpGet(p.httpGet) } : {}),
    timeoutSeconds: p.timeoutSeconds || 1,
    periodSeconds: p.periodSeconds || 10,
    successThreshold: p.successThreshold || 1,
    failureThreshold: p.failureThreshold || 3,
  };
}

/** A container as the API server would store it: absent defaulted fields filled in. */
export function withContainerDefaults(c: V1Container): V1Container {
  const out: V1Container = {
    ...c,
    imagePullPolicy: c.imagePullPolicy || defaultPullPolicy(c.image ?? ''),
    terminationMessagePath: c.terminationMessagePath || TERMINATION_MESSAGE_PATH,
    terminationMessagePolicy: c.terminationMessagePolicy || TERMINATION_MESSAGE_POLICY,
  };
  if (c.ports) out.ports = c.ports.map((p) => (p.protocol ? p : { ...p, protocol: 'TCP' }));
  if (c.env) {
    out.env = c.env.map((e) =>
      e.valueFrom?.fieldRef && !e.valueFrom.fieldRef.apiVersion
        ? { ...e, valueFrom: { ...e.valueFrom, fieldRef: { ...e.valueFrom.fieldRef, apiVersion: 'v1' } } }
        : e,
    );
  }
  for (const key of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
    if (c[key]) out[key] = probe(c[key]);
  }
  if (c.lifecycle) {
    out.lifecycle = { ...c.lifecycle };
    for (const key of ['postStart', 'preStop'] as const) {
      const handler = c.lifecycle[key];
      if (handler?.httpGet) out.lifecycle[key] = { ...handler, httpGet: httpGet(handler.httpGet) };
    }
  }
  // SetDefaults_Pod: a resource with a limit and no request is requested at its limit.
  const limits = c.resources?.limits;
  if (limits && Object.keys(limits).some((k) => c.resources?.requests?.[k] === undefined)) {
    out.resources = { ...c.resources, requests: { ...limits, ...c.resources?.requests } };
  }
  return out;
}

/** A volume as the API server would store it. */
export function withVolumeDefaults(v: V1Volume): V1Volume {
  if (v.secret && v.secret.defaultMode === undefined) return { ...v, secret: { ...v.secret, defaultMode: DEFAULT_FILE_MODE } };
  if (v.configMap && v.configMap.defaultMode === undefined) return { ...v, configMap: { ...v.configMap, defaultMode: DEFAULT_FILE_MODE } };
  if (v.downwardAPI && v.downwardAPI.defaultMode === undefined) {
    return { ...v, downwardAPI: { ...v.downwardAPI, defaultMode: DEFAULT_FILE_MODE } };
  }
  if (v.projected && v.projected.defaultMode === undefined) return { ...v, projected: { ...v.projected, defaultMode: DEFAULT_FILE_MODE } };
  if (v.hostPath && v.hostPath.type === undefined) return { ...v, hostPath: { ...v.hostPath, type: '' } };
  return v;
}
