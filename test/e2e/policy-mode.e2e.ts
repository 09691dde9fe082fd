/**
 * The chart in policy mode on a real kube-apiserver 1.36 (issue 23): no
 * webhook configuration; one replica running the Deployment's `serve
 * --policy` with its ServiceAccount's token (so the chart's RBAC is the real
 * one) proves each policy on canary pods and applies it; the API server
 * injects by itself, also with the replica gone. A config it cannot compile,
 * and a policy that fails on canary pods, leave the policy in force as it
 * was; `audit` works across modes.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { parsePrometheus, sampleValue } from '../helpers/ops.js';
import { runCli } from '../helpers/process.js';
import { ApiServer } from './apiserver.js';
import { Install, NS, RELEASE, type Replica } from './install.js';
import { createPod, eventually, namespace, pod, type Pod } from './pods.js';
import { describeOn, NEEDS } from './server.js';

const { describe, applies } = describeOn(NEEDS.mutatingAdmissionPolicy, import.meta.url);

let kas: ApiServer;
let install: Install;
let replica: Replica;

const POLICIES = '/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies';
const injected = (p: Pod) => !!p.metadata.annotations?.['sidecar-injector.io/status'];
const metric = async (name: string, labels: Record<string, string>) =>
  sampleValue(parsePrometheus(await (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text()), name, labels);
const fingerprint = async () => ((await kas.must('GET', `${POLICIES}/${RELEASE}`)).metadata as { annotations: Record<string, string> }).annotations['sidecar-injector.io/compiled'];

/** Changes the chart's ConfigMap and plays kubelet for the replica's config volume. */
async function setConfig(edit: (yaml: string) => string): Promise<void> {
  const files = await install.configFiles();
  const next = { ...files, 'config.yaml': edit(files['config.yaml']!) };
  await kas.must('PATCH', `/api/v1/namespaces/${NS}/configmaps/${RELEASE}-config`, { data: next }, 'application/merge-patch+json');
  replica.config.update(next);
}

beforeAll(async () => {
  if (!applies) return;
  kas = await ApiServer.start();
  install = new Install(kas, { injection: { mode: 'policy' }, audit: { interval: '10s' } });
  expect(install.docs.some((d) => d.kind === 'MutatingWebhookConfiguration')).toBe(false);
  install.apply();
  replica = await install.startReplica();
  await namespace(kas, 'shop', { 'sidecar-injector.io/injection': 'enabled' });
  await namespace(kas, 'plain');
}, 120_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
});

describe('policy mode, installed by the chart', () => {
  it('the replica proves the policy on canary pods, applies it, and the API server injects: by namespace and by annotation; a pod that does not ask is left alone', async () => {
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' })) === 1, 'the policy promoted', 30_000);
    // The log line may follow the metric by a moment (logs are written asynchronously).
    await replica.proc.waitForLog((l) => l.msg === 'policy proven on canary pods and in force');
    // Ready once a policy is in force (so `kubectl rollout status` means it).
    expect((await fetch(`http://127.0.0.1:${replica.metricsPort}/readyz`)).status).toBe(200);
    // The candidate is gone; no canary pod was stored.
    expect((await kas.call('GET', `${POLICIES}/${RELEASE}-candidate`)).status).toBe(404);
    expect(((await kas.must('GET', `/api/v1/namespaces/${NS}/pods`)).items as unknown[]).length).toBe(0);
    await eventually(async () => injected(await createPod(kas, pod('shop', `by-namespace-${Date.now()}`))), 'injection in an enabled namespace', 15_000);
    const asked = await createPod(kas, pod('plain', 'asks', { annotations: { 'sidecar-injector.io/inject': 'true', 'sidecar-injector.io/log-shipper.image': 'cr.fluentbit.io/fluent/fluent-bit:3.3.0' } }));
    expect(asked.spec.initContainers!.find((c) => c.name === 'log-shipper')).toMatchObject({ restartPolicy: 'Always', image: 'cr.fluentbit.io/fluent/fluent-bit:3.3.0' });
    expect(injected(await createPod(kas, pod('plain', 'does-not-ask')))).toBe(false);
  });

  it('a config reload compiles a new policy, proven and applied', async () => {
    const before = await fingerprint();
    await setConfig((y) => y.replace('image: cr.fluentbit.io/fluent/fluent-bit:3.2.2', 'image: cr.fluentbit.io/fluent/fluent-bit:3.2.3'));
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' })) === 2, 'the new policy promoted', 30_000);
    expect(await fingerprint()).not.toBe(before);
    await eventually(async () => (await createPod(kas, pod('plain', `after-reload-${Date.now()}`, { annotations: { 'sidecar-injector.io/inject': 'true' } }))).spec.initContainers![0]!.image === 'cr.fluentbit.io/fluent/fluent-bit:3.2.3', 'the new image', 15_000);
  });

  it('a config the policy cannot express is rejected like a bad config: the last good config and policy stay', async () => {
    const before = await fingerprint();
    const failures = (await metric('sidecar_injector_config_reloads_total', { result: 'failure' })) ?? 0;
    // Resource overrides on a container without requests and limits: a map key CEL cannot leave out.
    await setConfig((y) => y.replace('profiles:\n', 'profiles:\n  bare:\n    containers: [{ name: bare, image: registry.example.com/bare:1 }]\n    overrides: { resources: true }\n'));
    await eventually(async () => ((await metric('sidecar_injector_config_reloads_total', { result: 'failure' })) ?? 0) > failures, 'the reload rejected', 15_000);
    await replica.proc.waitForLog((l) => l.msg === 'config reload rejected; keeping the last good config and policy' && JSON.stringify(l.errors).includes('profiles.bare.containers[0].resources'));
    expect(await fingerprint()).toBe(before);
    await setConfig((y) => y.replace('  bare:\n    containers: [{ name: bare, image: registry.example.com/bare:1 }]\n    overrides: { resources: true }\n', ''));
  });

  it('onConflict: deny refuses a conflicting pod, and a pod that asks is warned as the webhook warns it (ValidatingAdmissionPolicies)', async () => {
    const promoted = (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' }))!;
    await setConfig((y) => y.replace('onConflict: skip', 'onConflict: deny'));
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' })) === promoted + 1, 'the deny policy promoted', 30_000);
    const conflicting = pod('plain', `conflict-${Date.now()}`, { annotations: { 'sidecar-injector.io/inject': 'true' } });
    conflicting.spec.containers.push({ name: 'log-shipper', image: 'mine:1' });
    await eventually(async () => {
      const a = await kas.call('POST', '/api/v1/namespaces/plain/pods', { ...conflicting, metadata: { ...conflicting.metadata, name: `conflict-${Date.now()}` } });
      return a.status === 422 && String(a.body.message).includes('sidecar injection denied');
    }, 'the conflicting pod refused', 15_000);
    const unknown = await kas.call('POST', '/api/v1/namespaces/plain/pods', pod('plain', `unknown-${Date.now()}`, { annotations: { 'sidecar-injector.io/inject': 'nope' } }));
    expect(unknown.status).toBe(201);
    expect(unknown.warnings.some((w) => w.includes('unknown sidecar profile ignored'))).toBe(true);
    await setConfig((y) => y.replace('onConflict: deny', 'onConflict: skip'));
    await eventually(async () => (await kas.call('GET', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/sidecar-injector-deny')).status === 404, 'the deny policy removed with the config that asked for it', 30_000);
  }, 90_000);

  it('a policy that fails on canary pods is not promoted: the one in force stays, and the failure is counted', async () => {
    // Stand-in for a policy the API server accepts but fails at admission: every canary pod is refused.
    const VAP = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies';
    await kas.must('POST', VAP, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: 'refuse-canaries' },
      spec: { failurePolicy: 'Fail', matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] }, validations: [{ expression: '!has(object.metadata.labels) || !("sidecar-injector.io/canary" in object.metadata.labels)', message: 'no canaries here' }] },
    });
    await kas.must('POST', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings', { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: 'refuse-canaries' }, spec: { policyName: 'refuse-canaries', validationActions: ['Deny'] } });
    const before = await fingerprint();
    const rejected = (await metric('sidecar_injector_policy_writes_total', { result: 'rejected' })) ?? 0;
    await setConfig((y) => y.replace('image: cr.fluentbit.io/fluent/fluent-bit:3.2.3', 'image: cr.fluentbit.io/fluent/fluent-bit:3.2.4'));
    // The candidate is retried for up to 30 s (a new policy takes the API server a moment to load) before it is refused.
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'rejected' })) === rejected + 1, 'the candidate rejected', 90_000);
    expect(await fingerprint()).toBe(before);
    await replica.proc.waitForLog((l) => l.msg === 'the new policy failed on canary pods; the policies in force stay' && String(l.problem).includes('no canaries here'));
    expect((await kas.call('GET', `${POLICIES}/${RELEASE}-candidate`)).status).toBe(404);
    await kas.must('DELETE', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/refuse-canaries');
    await kas.must('DELETE', `${VAP}/refuse-canaries`);
  }, 150_000);

  it('audit works across modes: the in-server audit judges by the policy in force, and counts the pods it injected', async () => {
    // The config of the last test was never promoted: the audit still judges by the policy in force.
    const promoted = (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' }))!;
    await setConfig((y) => y.replace('image: cr.fluentbit.io/fluent/fluent-bit:3.2.4', 'image: cr.fluentbit.io/fluent/fluent-bit:3.2.5'));
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'promoted' })) === promoted + 1, 'the policy promoted', 30_000);
    // The API server loads the new policy a moment after it is written: wait for a pod it injected.
    await eventually(async () => (await createPod(kas, pod('plain', `audited-${Date.now()}`, { annotations: { 'sidecar-injector.io/inject': 'true' } }))).spec.initContainers?.[0]?.image === 'cr.fluentbit.io/fluent/fluent-bit:3.2.5', 'the new policy injecting', 15_000);
    await eventually(async () => ((await metric('sidecar_injector_pods', { state: 'injected' })) ?? 0) >= 1, 'injected pods counted', 40_000);
    const r = await runCli(['audit', '-n', 'plain', '-o', 'json', '--kubeconfig', kas.kubeconfig]);
    // Scoped as the API server applies the policies: by their bindings.
    expect(r.stderr).toContain('scope: MutatingAdmissionPolicyBindings sidecar-injector, sidecar-injector-namespaces (2 webhooks)');
    const body = JSON.parse(r.stdout) as { counts: { injected: number; stale: number } };
    expect(body.counts.injected).toBeGreaterThanOrEqual(1);
    expect(body.counts.stale).toBeGreaterThanOrEqual(1); // injected under earlier policies
  }, 120_000);

  it('with the replica gone, injection goes on with the last policy written; a new replica finds it in place and writes nothing', async () => {
    replica.proc.child.kill('SIGTERM');
    await replica.proc.exited;
    expect(injected(await createPod(kas, pod('plain', 'while-down', { annotations: { 'sidecar-injector.io/inject': 'true' } })))).toBe(true);
    const before = await fingerprint();
    replica = await install.startReplica();
    await eventually(async () => (await metric('sidecar_injector_policy_writes_total', { result: 'unchanged' })) === 1, 'the policy found in place', 30_000);
    expect(await metric('sidecar_injector_policy_writes_total', { result: 'promoted' })).toBe(0);
    expect(await fingerprint()).toBe(before);
  }, 60_000);
});
