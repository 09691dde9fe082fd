/**
 * serve --policy's writer, its pure parts (CI): what it writes (fingerprinted,
 * the real bindings leaving canary pods out), the candidate (bound to canary
 * pods of one namespace only), the canary pods (one per profile, one for the
 * defaults) and how a dry-run pod is judged against the core's. The writer
 * against a real API server (canary pods, promotion, a refused candidate) is
 * test/e2e/policy-mode.e2e.ts; `serve --policy`'s start errors are here.
 */
import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { compilePolicy, policyScope, type PolicyObject } from '../../src/core/policy.js';
import { sentToWebhook } from '../../src/core/scope.js';
import { CANARY_LABEL, candidateObjects, managedObjects, probeMismatch, probePods } from '../../src/kube/policy-writer.js';
import { compile } from '../helpers/configs.js';
import { runCli } from '../helpers/process.js';

const CONFIG = compile(`
defaultProfiles: [agent]
profiles:
  agent:
    containers: [{ name: agent, image: registry.example.com/agent:1 }]
  exporter:
    nativeSidecar: false
    containers: [{ name: exporter, image: registry.example.com/exporter:1 }]
`);

function compiled(): PolicyObject[] {
  const r = compilePolicy(CONFIG, 'si', { major: 1, minor: 36 });
  if (!r.ok) throw new Error(r.problems.join());
  return r.objects;
}

describe('what serve --policy writes', () => {
  it('every object carries the fingerprint of what was compiled; the same config, the same fingerprint', () => {
    const a = managedObjects(compiled());
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(a.objects.every((o) => (o.metadata as { annotations?: Record<string, string> }).annotations?.['sidecar-injector.io/compiled'] === a.fingerprint)).toBe(true);
    expect(managedObjects(compiled()).fingerprint).toBe(a.fingerprint);
  });

  it('the real bindings leave canary pods out, so a candidate is tried alone', () => {
    const scope = policyScope(managedObjects(compiled()).objects);
    expect(scope.map((s) => s.name)).toEqual(['si-namespaces', 'si']);
    expect(sentToWebhook(scope, 'shop', {}, { app: 'web' })).toBe(true);
    expect(sentToWebhook(scope, 'shop', {}, { app: 'web', [CANARY_LABEL]: 'x' })).toBe(false);
    expect(sentToWebhook(scope, 'kube-system', {}, {})).toBe(false);
  });

  it('the candidate is the enabled namespaces\' policy (no condition on what the pod asks), bound only to canary pods of the injector\'s namespace', () => {
    const { objects, fingerprint } = managedObjects(compiled());
    const [policy, binding] = candidateObjects(objects, 'si', 'sidecar-injector', fingerprint) as [PolicyObject, PolicyObject];
    expect(policy.metadata.name).toBe('si-candidate');
    expect((policy.spec as { matchConditions?: { name: string }[] }).matchConditions?.map((c) => c.name)).toEqual(['sidecar-injector-not-injected']);
    expect(binding.spec).toEqual({
      policyName: 'si-candidate',
      matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'sidecar-injector' } }, objectSelector: { matchLabels: { [CANARY_LABEL]: fingerprint } } },
    });
  });

  it('canary pods: one asking for the defaults and one per profile, labelled for the candidate', () => {
    const pods = probePods(CONFIG, 'sidecar-injector', 'abc');
    expect(pods.map((p) => p.metadata?.annotations?.['sidecar-injector.io/inject'])).toEqual(['true', 'agent', 'exporter']);
    expect(pods.every((p) => p.metadata?.labels?.[CANARY_LABEL] === 'abc' && p.metadata?.namespace === 'sidecar-injector')).toBe(true);
  });

  it('a dry-run pod is judged by its status annotation and its containers\' images against the core\'s pod', () => {
    const probe = probePods(CONFIG, 'sidecar-injector', 'abc')[1]!;
    const out = admitPod(probe, { namespace: 'sidecar-injector', namespaceLabels: {}, server: { nativeSidecars: true } }, CONFIG);
    if (out.decision !== 'injected') throw new Error(out.reason);
    const agent = (p: V1Pod) => [...(p.spec!.initContainers ?? []), ...p.spec!.containers].find((c) => c.name === 'agent')!;
    const stored = structuredClone(out.pod) as V1Pod;
    agent(stored).terminationMessagePath = '/dev/termination-log'; // the API server's defaults do not matter
    expect(probeMismatch(out.pod, stored, 'sidecar-injector.io/status')).toBeUndefined();
    expect(probeMismatch(out.pod, probe, 'sidecar-injector.io/status')).toMatch(/^status annotation \(none\), expected /);
    const wrongImage = structuredClone(out.pod) as V1Pod;
    agent(wrongImage).image = 'registry.example.com/agent:2';
    expect(probeMismatch(out.pod, wrongImage, 'sidecar-injector.io/status')).toContain('agent=registry.example.com/agent:2');
  });
});

describe('serve --policy at start', () => {
  it('needs a cluster, a valid name, and no webhook flags; each refused in one line', async () => {
    const noCluster = await runCli(['serve', '--policy', 'si', '--metrics-port', '0'], { env: { KUBERNETES_SERVICE_HOST: '', SIDECAR_INJECTOR_KUBECONFIG: '' } });
    expect(noCluster.code).not.toBe(0);
    expect(noCluster.stderr).toContain('--policy needs cluster access');
    const badName = await runCli(['serve', '--policy', 'Not_A_Name']);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('--policy: "Not_A_Name" is not a valid object name');
    const both = await runCli(['serve', '--policy', 'si', '--patch-ca-bundle', 'x']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--policy goes without --patch-ca-bundle and --webhook-config');
  });
});
