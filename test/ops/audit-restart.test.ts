/**
 * `audit` judged by what the API server sends (the webhook configuration's
 * selectors) and `audit --restart`, as processes against the fake API
 * server. The test plays the controllers: it advances a workload's status
 * after the restart patch bumped its generation, as the Deployment,
 * StatefulSet and DaemonSet controllers would.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { CONFIG_MAP_KEY, CONFIG_MAP_SELECTOR } from '../../src/cli/audit.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { TEST_CONFIG_YAML } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { eventually } from '../helpers/ops.js';
import { runCli } from '../helpers/process.js';

const INJECTION = 'sidecar-injector.io/injection';
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

let fake: FakeApiServer;
let kubeconfig: string;
let controller: NodeJS.Timeout | undefined;
const stuck = new Set<string>();
const held = new Set<string>();

let n = 0;
function pod(namespace: string, owner: { kind: string; name: string } | undefined, labels: Record<string, string> = {}): V1Pod {
  return apiserverPod((p) => {
    n += 1;
    p.metadata!.name = `${owner?.name ?? 'bare'}-${n}`;
    p.metadata!.namespace = namespace;
    delete p.metadata!.generateName;
    delete p.metadata!.annotations!['sidecar-injector.io/inject'];
    p.metadata!.labels = labels;
    p.metadata!.ownerReferences = owner ? [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: `uid-${owner.name}`, controller: true }] : [];
    p.status = { phase: 'Running' };
  });
}

function workload(kind: 'Deployment' | 'StatefulSet' | 'DaemonSet', namespace: string, name: string): void {
  const plural = `${kind.toLowerCase()}s`;
  const status =
    kind === 'DaemonSet'
      ? { observedGeneration: 1, desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 2 }
      : kind === 'StatefulSet'
        ? { observedGeneration: 1, replicas: 2, readyReplicas: 2, updatedReplicas: 2, currentRevision: `${name}-1`, updateRevision: `${name}-1` }
        : { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2 };
  fake.put(plural, { apiVersion: 'apps/v1', kind, metadata: { name, namespace, generation: 1 }, spec: { replicas: 2, template: { metadata: { labels: { app: name } } } }, status });
  if (kind === 'Deployment') {
    fake.put('replicasets', { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: `${name}-rs`, namespace, ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid: `uid-${name}`, controller: true }] } });
    fake.put('pods', pod(namespace, { kind: 'ReplicaSet', name: `${name}-rs` }) as never);
  } else {
    fake.put('pods', pod(namespace, { kind, name }) as never);
  }
}

/** The controllers: a workload whose generation moved is rolled out at once, unless the test holds or blocks it. */
function runControllers(): void {
  controller = setInterval(() => {
    for (const plural of ['deployments', 'statefulsets', 'daemonsets']) {
      for (const o of fake.all(plural) as { metadata: { name: string; namespace: string; generation: number }; status: Record<string, unknown> }[]) {
        const key = `${plural}/${o.metadata.name}`;
        if (o.metadata.generation === o.status.observedGeneration || stuck.has(key) || held.has(key)) continue;
        const status = { ...o.status, observedGeneration: o.metadata.generation };
        if (plural === 'statefulsets') Object.assign(status, { currentRevision: `${o.metadata.name}-2`, updateRevision: `${o.metadata.name}-2` });
        fake.put(plural, { ...o, status });
      }
    }
  }, 50);
}

function chartWebhookConfiguration(excluded: string[]) {
  const hook = (name: string, operator: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    clientConfig: { service: { name: 'sidecar-injector', namespace: 'sidecar-injector', path: '/mutate' } },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
    namespaceSelector: {
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'sidecar-injector', ...excluded] },
        { key: INJECTION, operator, values: ['enabled'] },
      ],
    },
    objectSelector: { matchExpressions: [{ key: 'sidecar-injector.io/inject', operator: 'NotIn', values: ['false'] }] },
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'sidecar-injector', labels: { 'app.kubernetes.io/component': 'sidecar-injector-webhook' } },
    webhooks: [hook('namespaces.pods.sidecar-injector.io', 'In'), hook('pods.sidecar-injector.io', 'NotIn')],
  };
}

beforeEach(async () => {
  fake = new FakeApiServer();
  await fake.start();
  kubeconfig = fake.kubeconfig(mkdtempSync(join(tmpdir(), 'audit-restart-')));
  stuck.clear();
  held.clear();
  for (const ns of ['kube-system', 'sidecar-injector', 'legacy', 'shop', 'batch']) fake.namespace(ns, { [INJECTION]: 'enabled' });
  fake.put('configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'sidecar-injector-config', namespace: 'sidecar-injector', labels: Object.fromEntries([CONFIG_MAP_SELECTOR.split('=') as [string, string]]) },
    data: { [CONFIG_MAP_KEY]: TEST_CONFIG_YAML },
  });
  runControllers();
});

afterEach(async () => {
  clearInterval(controller);
  await fake.stop();
});

const audit = (args: string[]) => runCli(['audit', '--kubeconfig', kubeconfig, '--kube-version', '1.31', ...args], { env: { KUBERNETES_SERVICE_HOST: '' } });
const patches = () => fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.path);

describe('audit counts only what the API server sends', () => {
  beforeEach(() => {
    // Missed everywhere by the rules (namespaces labelled enabled), but the chart's selectors keep
    // the injector's own namespace and an excluded one away from the webhook.
    workload('Deployment', 'sidecar-injector', 'sidecar-injector');
    workload('Deployment', 'legacy', 'old-app');
    workload('Deployment', 'shop', 'web');
  });

  it("finds the chart's configuration by its label and applies its namespaceSelector", async () => {
    fake.put('mutatingwebhookconfigurations', chartWebhookConfiguration(['legacy']));
    const out = await audit(['-A', '-o', 'json']);
    expect(out.stderr).toContain('scope: MutatingWebhookConfiguration sidecar-injector (2 webhooks)');
    const body = JSON.parse(out.stdout) as { counts: Record<string, number>; workloads: { namespace: string; name: string }[] };
    expect(body.workloads.map((w) => `${w.namespace}/${w.name}`)).toEqual(['shop/web']);
    expect(body.counts).toMatchObject({ pods: 1, missed: 1 });
    expect(out.code).toBe(1);
  });

  it('--webhook-config names one; an objectSelector keeps opted-out pods away', async () => {
    fake.put('mutatingwebhookconfigurations', { ...chartWebhookConfiguration([]), metadata: { name: 'custom' } });
    fake.put('pods', pod('shop', undefined, { 'sidecar-injector.io/inject': 'false' }) as never);
    const out = await audit(['-A', '-o', 'json', '--webhook-config', 'custom']);
    const body = JSON.parse(out.stdout) as { workloads: { namespace: string; name: string }[] };
    expect(body.workloads.map((w) => `${w.namespace}/${w.name}`)).toEqual(['legacy/old-app', 'shop/web']);
    expect((await audit(['-A', '--webhook-config', 'missing'])).stderr).toContain('MutatingWebhookConfiguration missing not found');
  });

  it('no configuration found: the rules alone, and stderr says so', async () => {
    const out = await audit(['-A', '-o', 'json']);
    expect(out.stderr).toContain('scope: no MutatingWebhookConfiguration labelled app.kubernetes.io/component=sidecar-injector-webhook');
    const body = JSON.parse(out.stdout) as { workloads: unknown[] };
    expect(body.workloads).toHaveLength(3);
  });
});

describe('audit --restart', () => {
  beforeEach(() => {
    fake.put('mutatingwebhookconfigurations', chartWebhookConfiguration([]));
    workload('Deployment', 'shop', 'web');
    workload('StatefulSet', 'shop', 'db');
    workload('DaemonSet', 'shop', 'agent');
    // Never touched: a CronJob's Job, a Job, a bare pod.
    fake.put('jobs', { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'report-1', namespace: 'batch', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'report', uid: 'u', controller: true }] } });
    fake.put('pods', { ...pod('batch', undefined), metadata: { ...pod('batch', undefined).metadata, name: 'report-1-x', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'report-1', uid: 'u1', controller: true }] } } as never);
    fake.put('pods', pod('batch', undefined) as never);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const out = await audit(['-A', '--restart', '--dry-run']);
    expect(out.stderr).toContain('would restart deployment/web -n shop');
    expect(out.stderr).toContain('would restart statefulset/db -n shop');
    expect(out.stderr).toContain('would restart daemonset/agent -n shop');
    expect(out.stderr).toMatch(/not restarted: cronjob\/report -n batch \(missed\): its next run is injected/);
    expect(out.stderr).toMatch(/not restarted: pod\/bare-\d+ -n batch \(missed\)/);
    expect(patches()).toEqual([]);
    expect(out.code).toBe(1);
  });

  it('restarts Deployments, StatefulSets and DaemonSets as kubectl does, waits for each; CronJobs, Jobs and bare pods are left (exit 1)', async () => {
    const out = await audit(['-A', '--restart', '--rollout-timeout', '10s']);
    expect(patches().sort()).toEqual([
      '/apis/apps/v1/namespaces/shop/daemonsets/agent',
      '/apis/apps/v1/namespaces/shop/deployments/web',
      '/apis/apps/v1/namespaces/shop/statefulsets/db',
    ]);
    const patch = fake.requests.find((r) => r.method === 'PATCH')!;
    expect(patch.contentType).toBe('application/strategic-merge-patch+json');
    const web = fake.get('deployments', 'shop/web') as { metadata: { generation: number }; spec: { template: { metadata: { annotations: Record<string, string>; labels: Record<string, string> } } } };
    expect(web.spec.template.metadata.annotations[RESTARTED_AT]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(web.spec.template.metadata.labels).toEqual({ app: 'web' });
    expect(web.metadata.generation).toBe(2);
    for (const w of ['deployment/web', 'statefulset/db', 'daemonset/agent']) expect(out.stderr).toMatch(new RegExp(`${w} -n shop: (successfully rolled out|rolling update complete)`));
    expect(out.stderr).toContain('restart: 3 of 3 rolled out; 2 workloads left');
    expect(out.code).toBe(1);
  });

  it('at most --max-concurrent rollouts at a time', async () => {
    held.add('deployments/web').add('statefulsets/db').add('daemonsets/agent');
    const run = audit(['-n', 'shop', '--restart', '--max-concurrent', '2', '--rollout-timeout', '20s']);
    await eventually(async () => (patches().length === 2 ? true : undefined), 'two restarts');
    await new Promise((r) => setTimeout(r, 700));
    expect(patches()).toHaveLength(2);
    const first = patches()[0]!.split('/').slice(-2).join('/');
    held.delete(first);
    await eventually(async () => (patches().length === 3 ? true : undefined), 'the third, once one is done');
    held.clear();
    const out = await run;
    expect(out.stderr).toContain('restart: 3 of 3 rolled out');
    expect(out.code).toBe(0);
  });

  it('a rollout that never completes times out, is reported, and the rest go on (exit 1)', async () => {
    stuck.add('deployments/web');
    const out = await audit(['-n', 'shop', '--restart', '--rollout-timeout', '1s', '--max-concurrent', '1']);
    expect(out.stderr).toMatch(/deployment\/web -n shop: timed-out: not complete after 1s: waiting for the rollout to be observed/);
    expect(out.stderr).toMatch(/statefulset\/db -n shop: rolling update complete/);
    expect(out.stderr).toMatch(/daemonset\/agent -n shop: successfully rolled out/);
    expect(out.stderr).toContain('restart: 2 of 3 rolled out; 1 workload left');
    expect(out.code).toBe(1);
  });
});
