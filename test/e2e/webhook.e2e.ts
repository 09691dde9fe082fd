/**
 * End to end on a real kube-apiserver (1.36; 1.30 by KUBERNETES=1.30) (`npm run e2e`): the product
 * installed as the chart installs it (install.ts), held to what the API
 * server stored and to its audit log, not to the webhook's own view.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { webhookCalls, type ApiServer } from './apiserver.js';
import { installed, NS, RELEASE, type Install, type Replica } from './install.js';
import { runCli } from '../helpers/process.js';
import { createPod, eventually, namespace, pod, type Pod } from './pods.js';

let kas: ApiServer;
let install: Install;
let replicas: Replica[] = [];

beforeAll(async () => {
  ({ kas, install, replicas } = await installed({ audit: { interval: '10s' } }));
}, 180_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
});

const injected = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'log-shipper');
const calls = (name: string) => {
  const e = kas.podCreations().find((x) => x.objectRef?.name === name);
  if (!e) throw new Error(`no audit event for pod ${name}`);
  return webhookCalls(e, RELEASE);
};

describe('installed as the chart installs it', () => {
  it('the replicas wrote the caBundle and the matchConditions into the chart\'s configuration, and hold Leases', async () => {
    const mwc = await kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}`);
    const hooks = mwc.webhooks as { name: string; clientConfig: { caBundle?: string }; matchConditions?: { name: string }[] }[];
    const ca = (await install.secretFiles())['ca.crt']!;
    for (const h of hooks) expect(Buffer.from(h.clientConfig.caBundle ?? '', 'base64').toString()).toBe(ca);
    expect(hooks.map((h) => [h.name, (h.matchConditions ?? []).map((c) => c.name)])).toEqual([
      ['namespaces.pods.sidecar-injector.io', []],
      ['pods.sidecar-injector.io', ['sidecar-injector-asked']],
    ]);
    const leases = (await kas.must('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`)).items as { metadata: { name: string } }[];
    expect(leases.map((l) => l.metadata.name).sort()).toEqual(replicas.map((r) => r.name).sort());
  });
});

describe('SPEC 5 rules a cluster decides, witnessed by the stored pods and the audit log', () => {
  beforeAll(async () => {
    await namespace(kas, 'e2e-plain');
    await namespace(kas, 'e2e-enabled', { 'sidecar-injector.io/injection': 'enabled' });
    await namespace(kas, 'e2e-disabled', { 'sidecar-injector.io/injection': 'disabled' });
  });

  it('a pod asking by annotation is injected (native sidecar: auto on 1.36), with one webhook call', async () => {
    const p = await createPod(kas, pod('e2e-plain', 'by-annotation', { annotations: { 'sidecar-injector.io/inject': 'true' } }));
    expect(injected(p)).toBe(true);
    const sidecar = p.spec.initContainers!.find((c) => c.name === 'log-shipper')!;
    expect(sidecar.restartPolicy).toBe('Always');
    expect(p.spec.volumes!.map((v) => v.name)).toContain('app-logs');
    expect(p.spec.containers[0]!.volumeMounts!.map((m) => m.name)).toContain('app-logs');
    // The service-account token mount on the sidecar, as the ServiceAccount plugin gives the app.
    expect(sidecar.volumeMounts!.some((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount')).toBe(true);
    expect(JSON.parse(p.metadata.annotations!['sidecar-injector.io/status']!)).toMatchObject({ profiles: ['log-shipper'], initContainers: ['log-shipper'] });
    await eventually(() => calls('by-annotation') === 1, 'the audit event');
  });

  it('a pod asking by label is injected; inject "false" is not', async () => {
    expect(injected(await createPod(kas, pod('e2e-plain', 'by-label', { labels: { 'sidecar-injector.io/inject': 'true' } })))).toBe(true);
    expect(injected(await createPod(kas, pod('e2e-enabled', 'says-no', { labels: { 'sidecar-injector.io/inject': 'false' } })))).toBe(false);
  });

  it('a pod that does not ask, in a namespace that does not ask, is not sent at all (matchConditions): 0 calls', async () => {
    expect(injected(await createPod(kas, pod('e2e-plain', 'not-asking')))).toBe(false);
    await eventually(() => kas.podCreations().some((e) => e.objectRef?.name === 'not-asking'), 'the audit event');
    expect(calls('not-asking')).toBe(0);
  });

  it('a namespace labelled enabled before start injects every pod; disabled skips a pod that does not ask', async () => {
    expect(injected(await createPod(kas, pod('e2e-enabled', 'ns-enabled')))).toBe(true);
    await eventually(() => calls('ns-enabled') === 1, 'one call');
    expect(injected(await createPod(kas, pod('e2e-disabled', 'ns-disabled')))).toBe(false);
  });

  it('a namespace label added while running takes effect (within 5 s), and so does its removal', async () => {
    await namespace(kas, 'e2e-later');
    expect(injected(await createPod(kas, pod('e2e-later', 'before-label')))).toBe(false);
    kas.kubectl(['label', 'namespace', 'e2e-later', 'sidecar-injector.io/injection=enabled']);
    await eventually(async () => injected(await createPod(kas, pod('e2e-later', `after-label-${Date.now()}`))), 'injection after the label', 10_000);
    kas.kubectl(['label', 'namespace', 'e2e-later', 'sidecar-injector.io/injection-']);
    await eventually(async () => !injected(await createPod(kas, pod('e2e-later', `after-unlabel-${Date.now()}`))), 'no injection after the label went', 10_000);
  });

  it('excluded namespaces and the injector\'s own namespace are never injected, even when a pod asks', async () => {
    await namespace(kas, 'kube-public');
    await namespace(kas, NS);
    expect(injected(await createPod(kas, pod('kube-public', 'excluded', { annotations: { 'sidecar-injector.io/inject': 'true' } })))).toBe(false);
    expect(injected(await createPod(kas, pod(NS, 'own-namespace', { annotations: { 'sidecar-injector.io/inject': 'true' } })))).toBe(false);
    await eventually(() => kas.podCreations().some((e) => e.objectRef?.name === 'own-namespace'), 'the audit event');
    expect(calls('own-namespace')).toBe(0); // the chart's namespaceSelector keeps it out
  });
});

/** Changes the chart's ConfigMap and plays kubelet: every replica's config volume gets it. */
async function setConfig(edit: (yaml: string) => string): Promise<void> {
  const files = await install.configFiles();
  const next = { ...files, 'config.yaml': edit(files['config.yaml']!) };
  await kas.must('PATCH', `/api/v1/namespaces/${NS}/configmaps/${RELEASE}-config`, { data: next }, 'application/merge-patch+json');
  const reloads = (r: Replica) => r.proc.lines.filter((l) => l.msg === 'config reloaded').length;
  const before = replicas.map(reloads);
  for (const r of replicas) r.config.update(next);
  // Both replicas have it in force (the API server may call either).
  await eventually(() => replicas.every((r, i) => reloads(r) > before[i]!), 'both replicas reloaded');
}
const mwcHooks = async (name = RELEASE) =>
  (await kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`)).webhooks as {
    name: string;
    clientConfig: { caBundle?: string };
    matchConditions?: { name: string; expression: string }[];
  }[];

describe('config reloads on the real server', () => {
  let original = '';
  beforeAll(async () => {
    original = (await install.configFiles())['config.yaml']!;
  });
  afterAll(async () => {
    await setConfig(() => original);
    await eventually(async () => !(await mwcHooks())[1]!.matchConditions?.[0]?.expression.includes('"tier"'), 'the original conditions back', 15_000);
  });

  it('a reload that widens the scope (alwaysInjectSelector) rewrites the matchConditions: such a pod is then sent and injected, with one call', async () => {
    expect(injected(await createPod(kas, pod('e2e-plain', 'tier-before', { labels: { tier: 'logging' } })))).toBe(false);
    await setConfig((y) => y.replace('alwaysInjectSelector: []', 'alwaysInjectSelector: [{ matchLabels: { tier: logging } }]'));
    await eventually(async () => !!(await mwcHooks())[1]!.matchConditions?.[0]?.expression.includes('"tier"'), 'conditions with the new selector', 15_000);
    expect(injected(await createPod(kas, pod('e2e-plain', 'tier-after', { labels: { tier: 'logging' } })))).toBe(true);
    await eventually(() => calls('tier-after') === 1, 'one call');
  });

  it('audit --diff after an image bump: the running pods are stale, and their next pod changes only the image (issue 21)', async () => {
    await setConfig((y) => y.replace('image: cr.fluentbit.io/fluent/fluent-bit:3.2.2', 'image: cr.fluentbit.io/fluent/fluent-bit:3.2.3'));
    const r = await runCli(['audit', '-n', 'e2e-plain', '--diff', '-o', 'json', '--kubeconfig', kas.kubeconfig]);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.stdout) as { workloads: { kind: string; name: string; state: string; next?: { kind: string; containers: unknown; initContainers: unknown; volumes: unknown; appMounts: unknown[] } }[] };
    const pod = body.workloads.find((w) => w.kind === 'Pod' && w.name === 'by-annotation')!;
    expect(pod.state).toBe('stale');
    // The native sidecar is an init container on 1.36: only its image changes; the stored pod's defaults and token volume never show.
    expect(pod.next).toMatchObject({ kind: 'diff', containers: { added: [], removed: [], changed: [] }, initContainers: { added: [], removed: [], changed: [{ name: 'log-shipper', fields: ['image'] }] }, volumes: { added: [], removed: [], changed: [] }, appMounts: [] });
    const table = await runCli(['audit', '-n', 'e2e-plain', '--diff', '--kubeconfig', kas.kubeconfig]);
    expect(table.stdout).toContain('+    image: cr.fluentbit.io/fluent/fluent-bit:3.2.3');
  });

  it('opt-out: the conditions go, and a pod that does not ask is injected', async () => {
    await setConfig((y) => y.replace('policy: opt-in', 'policy: opt-out'));
    await eventually(async () => (await mwcHooks()).every((h) => (h.matchConditions ?? []).length === 0), 'no conditions', 15_000);
    expect(injected(await createPod(kas, pod('e2e-plain', 'opt-out-default')))).toBe(true);
    expect(injected(await createPod(kas, pod('e2e-disabled', 'opt-out-disabled')))).toBe(false);
  });
});

describe('native sidecars, Events, one-entry configurations', () => {
  it('nativeSidecar: true (the nginx-exporter profile) gives an init container with restartPolicy Always', async () => {
    const p = await createPod(kas, pod('e2e-plain', 'exporter', { annotations: { 'sidecar-injector.io/inject': 'nginx-exporter' } }));
    expect(p.spec.initContainers!.find((c) => c.name === 'nginx-exporter')!.restartPolicy).toBe('Always');
    await eventually(() => calls('exporter') === 1, 'one call');
  });

  it('an Injected Event is written for the pod, in its namespace', async () => {
    await eventually(
      async () => {
        const events = (await kas.must('GET', '/api/v1/namespaces/e2e-plain/events')).items as { reason: string; message: string }[];
        return events.some((e) => e.reason === 'Injected');
      },
      'an Injected event',
      15_000,
    );
  });

  it('a one-entry configuration (no requirement on the namespace label) gets no matchConditions: pods of enabled namespaces that do not ask are still injected (issue 22)', async () => {
    const ca = (await install.secretFiles())['ca.crt']!;
    await kas.must('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'one-entry' },
      webhooks: [
        {
          name: 'pods.one-entry.example.com',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          reinvocationPolicy: 'IfNeeded',
          clientConfig: { url: `https://${RELEASE}.${NS}.svc:${install.proxyPort}/mutate`, caBundle: Buffer.from(ca).toString('base64') },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
          namespaceSelector: { matchLabels: { 'e2e-one-entry': 'yes' } },
          matchConditions: [{ name: 'sidecar-injector-asked', expression: 'false' }],
        },
      ],
    });
    // What a user naming another configuration grants: get and patch on it.
    kas.kubectl(['create', 'clusterrole', 'one-entry', '--verb=get,patch', '--resource=mutatingwebhookconfigurations.admissionregistration.k8s.io', '--resource-name=one-entry']);
    kas.kubectl(['create', 'clusterrolebinding', 'one-entry', '--clusterrole=one-entry', `--serviceaccount=${NS}:${RELEASE}`]);
    // A replica keeping this configuration's conditions, as `serve --webhook-config one-entry` would.
    const third = await install.startReplica(['--webhook-config=one-entry']);
    await eventually(async () => ((await mwcHooks('one-entry'))[0]!.matchConditions ?? []).length === 0, 'the conditions removed', 15_000);
    await third.proc.waitForLog((l) => String(l.msg).includes('split it in two'));
    // Five pods that do not ask, in a namespace labelled enabled that only this configuration selects for them.
    await namespace(kas, 'e2e-one-entry', { 'e2e-one-entry': 'yes', 'sidecar-injector.io/injection': 'enabled' });
    for (let i = 0; i < 5; i++) expect(injected(await createPod(kas, pod('e2e-one-entry', `one-entry-${i}`)))).toBe(true);
    await kas.must('DELETE', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/one-entry');
    third.proc.child.kill('SIGTERM');
    await third.proc.exited;
    install.replicas.splice(install.replicas.indexOf(third), 1);
  });

  it('the caBundle is written into a configuration created after the replicas', async () => {
    const mwc = install.doc('MutatingWebhookConfiguration');
    await kas.must('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}`);
    await kas.must('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);
    await install.pointWebhooksAtService();
    const ca = (await install.secretFiles())['ca.crt']!;
    await eventually(async () => (await mwcHooks()).every((h) => Buffer.from(h.clientConfig.caBundle ?? '', 'base64').toString() === ca), 'the caBundle', 20_000);
    await eventually(async () => ((await mwcHooks())[1]!.matchConditions ?? []).length > 0, 'the conditions', 20_000);
    expect(injected(await createPod(kas, pod('e2e-enabled', 'after-recreate')))).toBe(true);
  });
});
