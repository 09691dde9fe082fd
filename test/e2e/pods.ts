/** Namespaces and pods on the real API server, and waiting for a condition (never a fixed sleep). */
import type { V1Container, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import type { ApiServer } from './apiserver.js';

export type Pod = V1Pod & { metadata: NonNullable<V1Pod['metadata']>; spec: V1PodSpec & { initContainers?: V1Container[] } };

/** A namespace with its `default` ServiceAccount (no controller creates it here). */
export async function namespace(kas: ApiServer, name: string, labels: Record<string, string> = {}): Promise<void> {
  const a = await kas.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  if (a.status !== 201 && a.status !== 409) throw new Error(`namespace ${name}: ${a.status} ${String(a.body.message)}`);
  const sa = await kas.call('POST', `/api/v1/namespaces/${name}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
  if (sa.status !== 201 && sa.status !== 409) throw new Error(`serviceaccount ${name}/default: ${sa.status} ${String(sa.body.message)}`);
}

/** A web server pod as a Deployment's template would give it (the API server adds the rest). */
export function pod(ns: string, name: string, meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: 'web', ...meta.labels }, ...(meta.annotations ? { annotations: meta.annotations } : {}) },
    spec: {
      containers: [
        {
          name: 'web',
          image: 'nginx:1.27',
          ports: [{ containerPort: 8080 }],
          resources: { requests: { cpu: '50m', memory: '64Mi' } },
        },
      ],
    },
  };
}

/** Creates the pod and returns what the API server stored. */
export async function createPod(kas: ApiServer, p: Pod): Promise<Pod> {
  const ns = p.metadata.namespace!;
  return (await kas.must('POST', `/api/v1/namespaces/${ns}/pods`, p)) as unknown as Pod;
}

export async function storedPod(kas: ApiServer, ns: string, name: string): Promise<Pod> {
  return (await kas.must('GET', `/api/v1/namespaces/${ns}/pods/${name}`)) as unknown as Pod;
}

/** Polls `check` until it holds, or fails naming `what`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
