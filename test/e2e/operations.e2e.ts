/**
 * Operations on a real kube-apiserver (1.36, or 1.30 by KUBERNETES=1.30): certificate rotation with two
 * replicas under continuous pod creation (the API server is the client, and
 * `failurePolicy: Fail` makes every failed call a failed creation), the API
 * server restarted and etcd compacted while the webhook runs, and `audit`
 * against workloads whose pods were created before their namespace asked.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePrometheus, sampleValue } from '../helpers/ops.js';
import { runCli } from '../helpers/process.js';
import { issueServingCertificate } from '../../src/tls/generate.js';
import type { ApiServer } from './apiserver.js';
import { installed, NS, RELEASE, type Install, type Replica } from './install.js';
import { createPod, eventually, namespace, pod, type Pod } from './pods.js';

let kas: ApiServer;
let install: Install;
let replicas: Replica[] = [];

beforeAll(async () => {
  ({ kas, install, replicas } = await installed({ audit: { interval: '10s' } }));
  await namespace(kas, 'e2e-rotation', { 'sidecar-injector.io/injection': 'enabled' });
}, 180_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
});

const injected = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'log-shipper');

/** Pods created without pause by `workers` loops until stopped; every failed creation is counted (the first messages kept). */
function creating(workers: number) {
  let running = true;
  let ok = 0;
  let notInjected = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const p = pod('e2e-rotation', '');
      delete (p.metadata as { name?: string }).name;
      p.metadata.generateName = 'web-';
      const a = await kas.call('POST', '/api/v1/namespaces/e2e-rotation/pods', p).catch((err: Error) => ({ status: 0, body: { message: err.message } }));
      if (a.status === 201) {
        ok += 1;
        if (!injected(a.body as unknown as Pod)) notInjected += 1;
      } else if (a.status === 409 && (a.body as { reason?: string }).reason === 'AlreadyExists') {
        // A generated name that clashed: before 1.31 (RetryGenerateName) the API server does not retry it itself;
        // the ReplicaSet controller would try again, and so do we. Not an admission failure.
        continue;
      } else {
        failures.push(failures.length < 20 ? `${a.status} ${String(a.body.message)}` : 'and more');
        if (failures.length > 5000) running = false;
      }
    }
  });
  return {
    created: () => ok,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { ok, notInjected, failures };
    },
  };
}

/** How far apart kubelet gives the two replicas a changed Secret. */
const GAP_MS = Number(process.env.ROTATION_GAP_MS ?? 8000);

/** Plays kubelet for a changed Secret under load: replica 0 gets it, then replica 1 `GAP_MS` later; both must reload. */
async function rotateUnderLoad(): Promise<{ ok: number; notInjected: number; failures: string[] }> {
  const files = await install.secretFiles();
  const reloads = (r: Replica) => r.proc.lines.filter((l) => l.msg === 'certificate reloaded').length;
  const before = replicas.map(reloads);
  const load = creating(4);
  try {
    await eventually(() => load.created() >= 10, 'pods being created');
    replicas[0]!.tls.update(files);
    await new Promise((r) => setTimeout(r, GAP_MS)); // the gap itself is the scenario, not a wait for a condition
    replicas[1]!.tls.update(files);
    await eventually(() => replicas.every((r, i) => reloads(r) > before[i]!), 'both replicas reloaded', 30_000);
  } finally {
    const result = await load.stop();
    if (result.failures.length > 0) {
      for (const r of replicas) process.stderr.write(`${r.name}:\n${r.proc.lines.filter((l) => /certificate|caBundle|Lease/.test(String(l.msg))).map((l) => JSON.stringify(l)).join('\n')}\n`);
    }
    rotations.push(result);
  }
  return rotations.at(-1)!;
}
const rotations: { ok: number; notInjected: number; failures: string[] }[] = [];

const certgenArgs = () => {
  const job = install.doc('Job', `${RELEASE}-certgen`) as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  return job.spec.template.spec.containers[0]!.args;
};
const caBundle = async () =>
  ((await kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}`)).webhooks as { clientConfig: { caBundle?: string } }[]).map((w) =>
    Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString(),
  );

describe('certificate rotation, two replicas, pods created continuously (failurePolicy Fail)', () => {
  it('a leaf renewed under the same CA (as certgen renews one that is due): no failed creation', async () => {
    // certgen renews the leaf under the CA it keeps in <secret>-ca; its CA and leaf share one lifetime, so
    // the test makes the due leaf itself, from that same CA key.
    const keep = (await kas.must('GET', `/api/v1/namespaces/${NS}/secrets/${RELEASE}-tls-ca`)).data as Record<string, string>;
    const ca = { caCert: Buffer.from(keep['ca.crt']!, 'base64').toString(), caKey: Buffer.from(keep['ca.key']!, 'base64').toString() };
    const leaf = await issueServingCertificate({ service: RELEASE, namespace: NS, dev: false, days: 30 }, ca);
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const before = await install.secretFiles();
    await kas.must('PATCH', `/api/v1/namespaces/${NS}/secrets/${RELEASE}-tls`, { data: { 'tls.crt': b64(leaf.cert), 'tls.key': b64(leaf.key) } }, 'application/merge-patch+json');
    expect((await install.secretFiles())['ca.crt']).toBe(before['ca.crt']);
    const { ok, failures, notInjected } = await rotateUnderLoad();
    expect(failures).toEqual([]);
    expect(notInjected).toBe(0);
    expect(ok).toBeGreaterThan(20);
    expect(await caBundle()).toEqual([before['ca.crt'], before['ca.crt']]);
  }, 120_000);

  it('a new CA the way certgen writes it (previous CA kept in ca.crt): no failed creation', async () => {
    await kas.must('DELETE', `/api/v1/namespaces/${NS}/secrets/${RELEASE}-tls-ca`);
    const r = await runCli([...certgenArgs().filter((a) => !a.startsWith('--renew-before')), '--renew-before=876000h', '--kubeconfig', kas.kubeconfig], { env: { KUBERNETES_SERVICE_HOST: '' } });
    expect(r.code).toBe(0);
    const files = await install.secretFiles();
    expect((files['ca.crt']!.match(/BEGIN CERTIFICATE/g) ?? []).length).toBe(2);
    const { ok, failures } = await rotateUnderLoad();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
  }, 120_000);

  it('the Secret replaced whole by one whose ca.crt holds only a new CA: no failed creation, and the old CAs leave once no replica needs them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'own-pki-'));
    const made = await runCli(['certs', '--service', RELEASE, '--namespace', NS, '--out', dir]);
    expect(made.code).toBe(0);
    const read = (f: string) => Buffer.from(readFileSync(join(dir, f))).toString('base64');
    await kas.must('PUT', `/api/v1/namespaces/${NS}/secrets/${RELEASE}-tls`, {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: `${RELEASE}-tls`, namespace: NS },
      data: { 'ca.crt': read('ca.crt'), 'tls.crt': read('tls.crt'), 'tls.key': read('tls.key') },
    });
    const { ok, failures } = await rotateUnderLoad();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    const onlyNew = readFileSync(join(dir, 'ca.crt'), 'utf8');
    await eventually(async () => (await caBundle()).every((b) => b === onlyNew), 'only the new CA left', 60_000);
    process.stderr.write(
      `rotation on kube-apiserver ${kas.version}, replicas ${GAP_MS} ms apart, 4 creators: ${rotations.map((r, i) => `${['leaf renewal', 'certgen CA change', 'Secret replaced whole'][i]}: ${r.ok} pods, ${r.failures.length} failed`).join('; ')}\n`,
    );
  }, 180_000);
});

/** etcd's JSON gateway: compact to the current revision (what the API server's compactor does every 5 minutes). */
async function compactEtcd(): Promise<number> {
  const url = kas.etcdUrl;
  const range = (await (await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) })).json()) as { header: { revision: string } };
  const revision = Number(range.header.revision);
  const compacted = await fetch(`${url}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision, physical: true }) });
  if (!compacted.ok) throw new Error(`etcd compaction: ${compacted.status} ${await compacted.text()}`);
  return revision;
}

const metric = async (r: Replica, name: string, labels: Record<string, string> = {}) =>
  sampleValue(parsePrometheus(await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text()), name, labels);

describe('the API server restarted and etcd compacted while the webhook runs', () => {
  it('the namespace watch recovers: a label put on a namespace the cache already knows takes effect after both', async () => {
    await namespace(kas, 'e2e-restart');
    expect(injected(await createPod(kas, pod('e2e-restart', 'before-restart')))).toBe(false);
    const watchRestarts = async () =>
      (await Promise.all(['closed', 'expired', 'error'].map((reason) => metric(replicas[0]!, "sidecar_injector_namespace_watch_restarts_total", { reason })))).reduce((a: number, b) => a + (b ?? 0), 0);
    const restartsBefore = await watchRestarts();
    // Changes after the webhook's last watch event, then compaction past them: a resumed watch gets 410 and relists.
    await namespace(kas, 'e2e-churn-1');
    await namespace(kas, 'e2e-churn-2');
    const revision = await compactEtcd();
    expect(revision).toBeGreaterThan(0);
    await kas.restart();
    kas.kubectl(['label', 'namespace', 'e2e-restart', 'sidecar-injector.io/injection=enabled']);
    await eventually(async () => injected(await createPod(kas, pod('e2e-restart', `after-restart-${Date.now()}`))), 'injection after the restart', 30_000);
    expect(await watchRestarts()).toBeGreaterThan(restartsBefore);
    for (const r of replicas) expect(await metric(r, 'sidecar_injector_namespace_cache_synced')).toBe(1);
  }, 180_000);
});

describe('audit against workloads whose pods were created before their namespace asked', () => {
  beforeAll(async () => {
    await namespace(kas, 'e2e-audit');
    const dep = await kas.must('POST', '/apis/apps/v1/namespaces/e2e-audit/deployments', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: pod('e2e-audit', 'x').spec } },
    });
    const owner = (o: Record<string, unknown>, kind: string, apiVersion: string) => ({ apiVersion, kind, name: (o.metadata as { name: string }).name, uid: (o.metadata as { uid: string }).uid, controller: true });
    const rs = await kas.must('POST', '/apis/apps/v1/namespaces/e2e-audit/replicasets', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'web-5d8f7b9c4', labels: { app: 'web', 'pod-template-hash': '5d8f7b9c4' }, ownerReferences: [owner(dep, 'Deployment', 'apps/v1')] },
      spec: { replicas: 1, selector: { matchLabels: { app: 'web', 'pod-template-hash': '5d8f7b9c4' } }, template: { metadata: { labels: { app: 'web', 'pod-template-hash': '5d8f7b9c4' } }, spec: pod('e2e-audit', 'x').spec } },
    });
    const p = pod('e2e-audit', 'web-5d8f7b9c4-x2k9p', { labels: { 'pod-template-hash': '5d8f7b9c4' } });
    (p.metadata as { ownerReferences?: unknown[] }).ownerReferences = [owner(rs, 'ReplicaSet', 'apps/v1')];
    expect(injected(await createPod(kas, p))).toBe(false);
    kas.kubectl(['label', 'namespace', 'e2e-audit', 'sidecar-injector.io/injection=enabled']);
  });

  it('audit reports the pod as missed, with its Deployment, and exits 1', async () => {
    const r = await runCli(['audit', '-n', 'e2e-audit', '-o', 'json', '--kubeconfig', kas.kubeconfig]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { workloads: { kind: string; name: string; state: string; examples: string[] }[] };
    expect(report.workloads).toEqual([expect.objectContaining({ kind: 'Deployment', name: 'web', state: 'missed', examples: ['web-5d8f7b9c4-x2k9p'] })]);
  });

  it('the in-server audit (--audit-interval) exports it', async () => {
    await eventually(async () => ((await metric(replicas[0]!, 'sidecar_injector_pods', { state: 'missed' })) ?? 0) >= 1, 'missed pods counted', 40_000);
  }, 60_000);

  it('audit --restart --dry-run names the Deployment; --restart rolls it as kubectl rollout restart does', async () => {
    const dry = await runCli(['audit', '-n', 'e2e-audit', '--restart', '--dry-run', '--kubeconfig', kas.kubeconfig]);
    expect(dry.stdout).toContain('deployment/web');
    const before = await kas.must('GET', '/apis/apps/v1/namespaces/e2e-audit/deployments/web');
    expect(((before.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations ?? {})['kubectl.kubernetes.io/restartedAt']).toBeUndefined();
    // No controller runs here, so the rollout never completes: the restart is made, the wait times out.
    await runCli(['audit', '-n', 'e2e-audit', '--restart', '--rollout-timeout', '2s', '--kubeconfig', kas.kubeconfig]);
    const after = await kas.must('GET', '/apis/apps/v1/namespaces/e2e-audit/deployments/web');
    expect((after.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((after.metadata as { generation: number }).generation).toBe((before.metadata as { generation: number }).generation + 1);
  });
});
