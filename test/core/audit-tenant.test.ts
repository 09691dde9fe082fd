/** SPEC 9 in the audit: pods injected with a tenant profile that changed, is refused now, or is gone. */
import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { AuditReport, classifyPod } from '../../src/core/audit.js';
import type { TenantProfile, TenantProfiles } from '../../src/core/tenant-profile.js';
import { testConfig } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';
import { restrictedProfile } from '../helpers/tenant-profiles.js';

const server = { nativeSidecars: true };
const config = testConfig('tenantProfiles: { enabled: true, allowedRegistries: [registry.example.com/team/], maxResources: { cpu: 500m } }');
const tenant = (generation: number, profile = restrictedProfile()): TenantProfile => ({ namespace: 'shop', name: 'db-proxy', generation, profile, specProblems: [] });
const index = (...ts: TenantProfile[]): TenantProfiles => new Map(ts.map((t) => [t.name, t]));

function injectedWith(t: TenantProfile): V1Pod {
  const pod = apiserverPod((p) => {
    p.metadata!.namespace = 'shop';
    p.metadata!.annotations = { 'sidecar-injector.io/inject': 'db-proxy' };
    p.status = { phase: 'Running' };
  });
  const out = admitPod(pod, { namespace: 'shop', namespaceLabels: {}, server, tenantProfiles: index(t) }, config);
  if (out.decision !== 'injected') throw new Error(out.reason);
  return applyJsonPatch(pod, out.patch);
}

describe('classifyPod with the SidecarProfiles of the pod namespace', () => {
  const pod = injectedWith(tenant(2));

  it('injected while the profile is the one injected', () => {
    expect(classifyPod(pod, {}, config, server, index(tenant(2)))).toEqual({ state: 'injected', reason: 'injected with the config in force' });
  });

  it('stale when the team changed it (generation), or when the limits now refuse it', () => {
    expect(classifyPod(pod, {}, config, server, index(tenant(3)))).toEqual({ state: 'stale', reason: 'tenant profile shop/db-proxy changed (generation 2, now 3)' });
    const tightened = testConfig('tenantProfiles: { enabled: true, maxResources: { cpu: 100m } }');
    // A changed config is stale by revision first; with the same revision the verdict speaks.
    expect(classifyPod(pod, {}, tightened, server, index(tenant(2))).state).toBe('stale');
    const refusedNow = tenant(2, { ...restrictedProfile(), containers: [{ ...restrictedProfile().containers[0]!, securityContext: { privileged: true } }] });
    expect(classifyPod(pod, {}, config, server, index(refusedNow))).toEqual({ state: 'stale', reason: 'tenant profile shop/db-proxy is no longer accepted (OutsideLimits)' });
  });

  it('orphaned when it was deleted; a report fails on it', () => {
    const verdict = classifyPod(pod, {}, config, server, index());
    expect(verdict).toEqual({ state: 'orphaned', reason: 'tenant profile shop/db-proxy no longer exists' });
    const r = new AuditReport();
    r.add(pod.metadata!.name!, { namespace: 'shop', kind: 'Deployment', name: 'orders' }, verdict);
    expect(r.counts.orphaned).toBe(1);
    expect(r.failing).toBe(true);
    expect(r.workloads()[0]).toMatchObject({ state: 'orphaned', action: 'kubectl rollout restart deployment/orders -n shop' });
  });

  it('missed: a pod that asks for an accepted tenant profile and has none', () => {
    const bare = apiserverPod((p) => {
      p.metadata!.namespace = 'shop';
      p.metadata!.annotations = { 'sidecar-injector.io/inject': 'db-proxy' };
      p.status = { phase: 'Running' };
    });
    expect(classifyPod(bare, {}, config, server, index(tenant(1))).state).toBe('missed');
    expect(classifyPod(bare, {}, config, server, index()).state).toBe('fine');
  });

  it('without an index of SidecarProfiles, nothing is claimed about them', () => {
    expect(classifyPod(pod, {}, config, server).state).toBe('injected');
  });
});
