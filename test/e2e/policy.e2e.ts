/**
 * Policy mode on a real kube-apiserver 1.36 (issue 23): the pods the API
 * server stores through the compiled MutatingAdmissionPolicies equal the pods
 * it stores through the webhook with the same config, field by field. The
 * chart is installed with test/helpers/policy-cases.ts's config; the policies from `policy` for
 * the chart's own ConfigMap are applied beside it. Namespaces labelled
 * `e2e-mode=policy` are the policies' (the webhook's configuration leaves
 * them out); the others the webhook's. Every case is created once in each.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { V1Pod } from '@kubernetes/client-node';
import { pod as generatedPod } from '../helpers/arbitraries.js';
import type { ApiServer } from './apiserver.js';
import { installed, type Install } from './install.js';
import { eventually, namespace, pod, type Pod } from './pods.js';
import { CONFIG, overrideCases, POLICY_CASES } from '../helpers/policy-cases.js';
import { describeOn, NEEDS } from './server.js';

const { describe, applies } = describeOn(NEEDS.mutatingAdmissionPolicy, import.meta.url);

const MODE = 'e2e-mode';

let kas: ApiServer;
let install: Install;

beforeAll(async () => {
  if (!applies) return;
  ({ kas, install } = await installed({ config: CONFIG, webhook: { namespaceSelectorExpressions: [{ key: MODE, operator: 'NotIn', values: ['policy'] }] } }));
  await install.applyPolicy(MODE);
  for (const [ns, labels] of Object.entries(NAMESPACES)) await namespace(kas, ns, labels);
  // In force once the API server's informer has it.
  await eventually(async () => injected(await create('policy-plain', pod('', `probe-${Date.now()}`, { annotations: { 'sidecar-injector.io/inject': 'true' } }))), 'the policy in force', 20_000);
}, 240_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
});

/** Twin namespaces: the webhook's and the policy's, plain and labelled enabled. */
const NAMESPACES: Record<string, Record<string, string>> = {
  'webhook-plain': {},
  'policy-plain': { [MODE]: 'policy' },
  'webhook-enabled': { 'sidecar-injector.io/injection': 'enabled' },
  'policy-enabled': { [MODE]: 'policy', 'sidecar-injector.io/injection': 'enabled' },
};

const injected = (p: Pod | undefined) => !!p?.metadata.annotations?.['sidecar-injector.io/status'];

async function create(ns: string, p: V1Pod): Promise<Pod | undefined> {
  const body = structuredClone(p);
  body.metadata = { ...body.metadata, namespace: ns };
  const a = await kas.call('POST', `/api/v1/namespaces/${ns}/pods`, body);
  return a.status === 201 ? (a.body as unknown as Pod) : undefined;
}

/** The stored pod without what differs by nature between two creations (identity, time, the token volume's random suffix). */
function comparable(p: Pod): unknown {
  const copy = structuredClone(p) as Pod & { status?: unknown };
  const identity = new Set(['namespace', 'uid', 'resourceVersion', 'creationTimestamp', 'managedFields', 'generation']);
  copy.metadata = Object.fromEntries(Object.entries(copy.metadata).filter(([k]) => !identity.has(k)));
  delete copy.status;
  return JSON.parse(JSON.stringify(copy).replace(/kube-api-access-[a-z0-9]{5}/g, 'kube-api-access-XXXXX'));
}

/** One case in both modes: the same outcome (refused by the API server in both, or stored the same). */
async function twin(name: string, p: V1Pod, enabled: boolean): Promise<{ created: boolean; injected: boolean }> {
  const body = structuredClone(p);
  body.metadata = { ...body.metadata, name };
  delete body.metadata.generateName;
  const [w, pol] = await Promise.all([create(enabled ? 'webhook-enabled' : 'webhook-plain', body), create(enabled ? 'policy-enabled' : 'policy-plain', body)]);
  expect({ name, created: pol !== undefined }).toEqual({ name, created: w !== undefined });
  if (w && pol) expect(comparable(pol)).toEqual(comparable(w));
  return { created: w !== undefined, injected: injected(w) };
}

describe('the same pods through the policy as through the webhook (kube-apiserver 1.36)', () => {
  it.each(POLICY_CASES)('%s', async (title, p, enabled, expectInjected) => {
    const name = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 50).replace(/^-|-$/g, '');
    expect(await twin(name, p, enabled)).toEqual({ created: true, injected: expectInjected });
  });

  it('over a few hundred generated pods (fast-check pods, both namespaces)', async () => {
    const pods = fc.sample(generatedPod, { seed: 20261130, numRuns: Number(process.env.E2E_POLICY_PODS ?? 200) });
    let injectedCount = 0;
    for (const [i, p] of pods.entries()) {
      // The webhook's fixtures carry a token volume by name; the API server adds its own: drop ours.
      if (p.spec?.volumes) p.spec.volumes = p.spec.volumes.filter((v) => !v.name.startsWith('kube-api-access-'));
      for (const c of [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])]) c.volumeMounts = c.volumeMounts?.filter((m) => !m.name.startsWith('kube-api-access-'));
      if (p.spec) delete p.spec.ephemeralContainers;
      if ((await twin(`gen-${i}`, p, i % 3 === 0)).injected) injectedCount += 1;
    }
    expect(injectedCount).toBeGreaterThan(pods.length / 10);
  }, 600_000);

  it('over generated override annotations (fast-check)', async () => {
    const cases = overrideCases(20261131, Number(process.env.E2E_POLICY_OVERRIDES ?? 100));
    for (const [i, annotations] of cases.entries()) {
      expect((await twin(`ov-${i}`, pod('', 'x', { annotations: { 'sidecar-injector.io/inject': 'true', ...annotations } }), false)).injected).toBe(true);
    }
  }, 600_000);

  it('a pod already injected is not injected again (the policy runs again on reinvocation: the status annotation guards it)', async () => {
    const p = await create('policy-plain', pod('', 'twice', { annotations: { 'sidecar-injector.io/inject': 'true' } }));
    expect(p!.spec.initContainers!.filter((c) => c.name === 'log-shipper')).toHaveLength(1);
    expect(p!.spec.volumes!.filter((v) => v.name === 'app-logs')).toHaveLength(1);
  });
});
