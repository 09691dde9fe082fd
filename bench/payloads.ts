/**
 * AdmissionReview v1 CREATE payloads shaped like kube-apiserver's for a
 * ReplicaSet's pod: generateName, ownerReferences, managedFields, defaulted
 * fields, the projected token volume, and the inject annotation.
 */
import { randomUUID } from 'node:crypto';

export type PayloadName = 'small' | 'large' | 'huge';

export interface Shape {
  containers: number;
  envPerContainer: number;
  portsPerContainer: number;
  mountsPerContainer: number;
}

const SHAPES: Record<PayloadName, Shape> = {
  small: { containers: 1, envPerContainer: 12, portsPerContainer: 1, mountsPerContainer: 1 },
  large: { containers: 20, envPerContainer: 12, portsPerContainer: 2, mountsPerContainer: 3 },
  huge: { containers: 5, envPerContainer: 1500, portsPerContainer: 1, mountsPerContainer: 1 },
};

/**
 * The `kube-api-access-*` volume the ServiceAccount admission plugin adds before the webhook sees the pod
 * (Kubernetes docs, "Configure Service Accounts for Pods": a bound token, the cluster's CA, the namespace).
 */
const TOKEN_VOLUME = {
  name: 'kube-api-access-x7k2p',
  projected: {
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
    ],
    defaultMode: 420,
  },
};

function container(i: number, shape: Shape): Record<string, unknown> {
  return {
    name: `app-${i}`,
    image: `registry.example.com/shop/app-${i}:1.4.${i}`,
    command: ['/bin/app'],
    args: ['--listen', `:${8000 + i * 10}`, '--log-dir', '/var/log/app'],
    ports: Array.from({ length: shape.portsPerContainer }, (_, p) => ({ name: `p${i}-${p}`, containerPort: 8000 + i * 10 + p, protocol: 'TCP' })),
    env: Array.from({ length: shape.envPerContainer }, (_, e) =>
      e % 5 === 4
        ? { name: `POD_FIELD_${e}`, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }
        : { name: `APP_SETTING_${i}_${e}`, value: `value-${e}-${'x'.repeat(20)}` },
    ),
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
    volumeMounts: [
      { name: TOKEN_VOLUME.name, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
      ...Array.from({ length: shape.mountsPerContainer - 1 }, (_, m) => ({ name: `data-${m}`, mountPath: `/data/${i}/${m}` })),
    ],
    livenessProbe: { httpGet: { path: '/healthz', port: 8000 + i * 10, scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
}

export function pod(name: PayloadName | Shape): Record<string, unknown> {
  const shape = typeof name === 'string' ? SHAPES[name] : name;
  const extraVolumes = Math.max(0, shape.mountsPerContainer - 1);
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'shop-7d4b9c8f6-',
      namespace: 'shop',
      labels: { app: 'shop', 'pod-template-hash': '7d4b9c8f6' },
      annotations: { 'sidecar-injector.io/inject': 'true' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'shop-7d4b9c8f6', uid: '0d3a6a5e-8f9c-4a0e-9d3b-6a0c2f1e7b11', controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-11-20T10:00:01Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': {} } },
        },
      ],
    },
    spec: {
      volumes: [
        TOKEN_VOLUME,
        ...Array.from({ length: extraVolumes }, (_, m) => ({ name: `data-${m}`, emptyDir: {} })),
      ],
      containers: Array.from({ length: shape.containers }, (_, i) => container(i, shape)),
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

const UID_MARK = '00000000-0000-4000-8000-000000000000';

export function review(name: PayloadName | Shape, uid = UID_MARK): Record<string, unknown> {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: pod(name),
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

/** The body as a template: a fresh uid per request costs a string concat, not a re-serialisation. */
export function bodyTemplate(name: PayloadName): { size: number; make: () => string } {
  const text = JSON.stringify(review(name));
  const at = text.indexOf(UID_MARK);
  const head = text.slice(0, at);
  const tail = text.slice(at + UID_MARK.length);
  return { size: Buffer.byteLength(text), make: () => head + randomUUID() + tail };
}
