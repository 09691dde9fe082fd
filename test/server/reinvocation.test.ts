/**
 * SPEC 6, "one webhook call per injected pod": pods go through a model of
 * kube-apiserver's mutating chain (test/fake-apiserver/admission-chain.ts,
 * written from the Kubernetes sources it cites), which calls the real
 * webhook over TLS, applies its patch with kubectl, defaults the result,
 * re-runs the ServiceAccount plugin and calls the webhook again exactly when
 * the dispatcher would. Each case counts the calls.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { admitPodCreate, serviceAccountPlugin, TOKEN_PATH, type ServiceAccount, type Webhook } from '../fake-apiserver/admission-chain.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch, decodePatch } from '../helpers/patch-engine.js';
import { postReview, startTestServer, type TestServer } from '../helpers/server.js';

const HIDDEN_TOKEN_PROFILE = `
  no-token:
    containers:
      - name: no-token
        image: registry.example.com/agent:1.0
        volumeMounts: [{ name: no-token, mountPath: ${TOKEN_PATH} }]
    volumes: [{ name: no-token, emptyDir: {} }]
`;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(compile(`${TEST_CONFIG_YAML}${HIDDEN_TOKEN_PROFILE}`));
});
afterAll(() => server.close());

const webhook: Webhook = async (pod) => {
  const res = await postReview(server, admissionReview(pod, { namespace: 'shop' }));
  const review = res.json() as { response: { allowed: boolean; patch?: string } };
  expect(review.response.allowed).toBe(true);
  return review.response.patch ? applyJsonPatch(pod, decodePatch(review.response.patch)) : pod;
};

/** A pod as its controller submits it: no token volume yet, no defaults (the chain adds them). */
function submitted(annotation: string, spec: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-5d8f7b-', namespace: 'shop', annotations: { 'sidecar-injector.io/inject': annotation } },
    spec: { containers: [{ name: 'web', image: 'nginx:1.27', ports: [{ containerPort: 80 }] }], ...spec },
  };
}

const mountsAt = (c: V1Container | undefined) => (c?.volumeMounts ?? []).filter((m) => m.mountPath === TOKEN_PATH);
const named = (pod: V1Pod, name: string) => [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].find((c) => c.name === name);

/** Injected, in one call, and every container mounts the token as the plugin would have it. */
async function oneCall(pod: V1Pod, sa: ServiceAccount = {}) {
  const result = await admitPodCreate(pod, webhook, sa);
  expect(JSON.parse(result.pod.metadata!.annotations!['sidecar-injector.io/status']!)).toBeDefined();
  expect(result.calls).toBe(1);
  return result.pod;
}

describe('one webhook call per injected pod, through a model of the API server', () => {
  it('the recorded ReplicaSet pod (token volume, defaults) and the templates of test/fixtures/manifests', async () => {
    const templates = parseAllDocuments(readFileSync(new URL('../fixtures/manifests/web.yaml', import.meta.url), 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec?: { template?: V1Pod; jobTemplate?: { spec: { template: V1Pod } } } })
      .map((d) => d.spec?.template ?? d.spec?.jobTemplate?.spec.template)
      .filter((t): t is V1Pod => t !== undefined)
      .map((t) => ({ apiVersion: 'v1', kind: 'Pod', ...t }));
    expect(templates.length).toBeGreaterThanOrEqual(2);
    for (const pod of [apiserverPod(), ...templates]) {
      const out = await oneCall(pod);
      for (const c of out.spec!.containers) expect(mountsAt(c)).toHaveLength(1);
    }
  });

  it('a pod with a token: the sidecar carries the same mount as the app', async () => {
    const out = await oneCall(submitted('true'));
    expect(mountsAt(named(out, 'log-shipper'))).toEqual(mountsAt(named(out, 'web')));
    expect(mountsAt(named(out, 'web'))[0]).toMatchObject({ readOnly: true, name: expect.stringMatching(/^kube-api-access-/) });
  });

  it('automountServiceAccountToken: false on the pod, or on its ServiceAccount: no token anywhere', async () => {
    for (const [pod, sa] of [
      [submitted('true', { automountServiceAccountToken: false }), {}],
      [submitted('true'), { automountServiceAccountToken: false }],
    ] as const) {
      const out = await oneCall(pod, sa);
      for (const c of out.spec!.containers) expect(mountsAt(c)).toEqual([]);
      expect((out.spec!.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-'))).toBe(false);
    }
  });

  it('a token mounted elsewhere by the app too: the sidecar gets the plugin mount only', async () => {
    const pod = submitted('true', {
      containers: [{ name: 'web', image: 'nginx:1.27', volumeMounts: [{ name: 'own-token', mountPath: '/var/run/tokens' }] }],
      volumes: [{ name: 'own-token', projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'vault' } }] } }],
    });
    const out = await oneCall(pod);
    expect(named(out, 'log-shipper')!.volumeMounts!.map((m) => m.mountPath)).toEqual(['/var/log/app', TOKEN_PATH]);
  });

  it('native sidecars and injected init containers, with app init containers', async () => {
    const pod = submitted('proxy', { initContainers: [{ name: 'migrate', image: 'app:1' }] });
    const out = await oneCall(pod);
    expect(out.spec!.initContainers!.map((c) => c.name)).toEqual(['proxy-init', 'proxy', 'migrate']);
    for (const c of out.spec!.initContainers!) expect(mountsAt(c)).toHaveLength(1);
  });

  it('a profile sidecar that mounts its own volume at the token path keeps it, and no token', async () => {
    const out = await oneCall(submitted('no-token'));
    expect(mountsAt(named(out, 'no-token'))).toEqual([{ name: 'no-token', mountPath: TOKEN_PATH }]);
  });

  it('a pod that does not ask is one call and no change', async () => {
    const pod = submitted('false');
    const result = await admitPodCreate(pod, webhook);
    expect(result.calls).toBe(1);
    expect(result.pod.metadata!.annotations!['sidecar-injector.io/status']).toBeUndefined();
  });
});

describe('the model itself', () => {
  it('calls a webhook twice when its sidecar lacks the token mount (what round 2 measured)', async () => {
    const careless: Webhook = async (pod) =>
      pod.metadata!.annotations!.done
        ? pod
        : { ...pod, metadata: { ...pod.metadata, annotations: { ...pod.metadata!.annotations, done: 'yes' } }, spec: { ...pod.spec!, containers: [...pod.spec!.containers, { name: 'bare', image: 'x:1', imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' }] } };
    expect((await admitPodCreate(submitted('true'), careless)).calls).toBe(2);
    expect((await admitPodCreate(submitted('true', { automountServiceAccountToken: false }), careless)).calls).toBe(1);
  });

  it('the ServiceAccount plugin adds one volume and mounts it where no mount is at the path', () => {
    const out = serviceAccountPlugin(submitted('true', { initContainers: [{ name: 'i', image: 'x', volumeMounts: [{ name: 'v', mountPath: TOKEN_PATH }] }] }));
    expect(out.spec!.volumes!.filter((v) => v.name.startsWith('kube-api-access-'))).toHaveLength(1);
    expect(mountsAt(out.spec!.initContainers![0])).toEqual([{ name: 'v', mountPath: TOKEN_PATH }]);
    expect(mountsAt(out.spec!.containers[0])[0]).toMatchObject({ readOnly: true });
  });
});
