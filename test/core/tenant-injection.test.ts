/**
 * SPEC 9 at admission: a pod asks for a SidecarProfile of its own namespace
 * by name and gets it exactly as a config profile, recorded as
 * `namespace/name` with its generation; a profile that is not accepted is
 * never injected and the pod is told why; a profile of another namespace is
 * never reachable. Patches are applied with Kubernetes' own code (kubectl).
 */
import fc from 'fast-check';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod, type PodContext } from '../../src/core/admit.js';
import { matchConditionsFor } from '../../src/core/match-conditions.js';
import { judgeProfile, tenantVerdict, type TenantProfile, type TenantProfiles } from '../../src/core/tenant-profile.js';
import type { Profile } from '../../src/core/config.js';
import { readSidecarProfile } from '../../src/config/sidecar-profile.js';
import { conditionsHold } from '../helpers/cel.js';
import { testConfig } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';
import { restrictedProfile, tenantProfile } from '../helpers/tenant-profiles.js';

const LIMITS_YAML = `
tenantProfiles:
  enabled: true
  allowedRegistries: [registry.example.com/team/]
  maxResources: { cpu: 500m, memory: 256Mi }
`;
const enabled = testConfig(LIMITS_YAML);
const INJECT = 'sidecar-injector.io/inject';
const STATUS = 'sidecar-injector.io/status';

function tenant(name: string, profile: Profile | undefined, opts: { namespace?: string; generation?: number; specProblems?: string[] } = {}): TenantProfile {
  return { namespace: opts.namespace ?? 'shop', name, generation: opts.generation ?? 1, profile, specProblems: opts.specProblems ?? [] };
}
const index = (...ts: TenantProfile[]): TenantProfiles => new Map(ts.map((t) => [t.name, t]));

function asking(wish: string, namespace = 'shop'): V1Pod {
  return apiserverPod((p) => {
    p.metadata!.namespace = namespace;
    p.metadata!.annotations = { ...p.metadata!.annotations, [INJECT]: wish };
  });
}
const ctx = (tenants: TenantProfiles | undefined, namespace = 'shop', labels: Record<string, string> = {}): PodContext => ({
  namespace,
  namespaceLabels: labels,
  server: { nativeSidecars: true },
  tenantProfiles: tenants,
});
const statusOf = (pod: V1Pod) => JSON.parse(pod.metadata!.annotations![STATUS]!) as Record<string, unknown>;

function privileged(): Profile {
  const p = restrictedProfile();
  p.containers[0]!.securityContext = { ...p.containers[0]!.securityContext, privileged: true };
  return p;
}

describe('a pod asks for a SidecarProfile of its namespace by name', () => {
  test('an accepted profile is injected as a config profile, recorded as namespace/name with its generation', () => {
    const pod = asking('db-proxy');
    const out = admitPod(pod, ctx(index(tenant('db-proxy', restrictedProfile(), { generation: 3 }))), enabled);
    expect(out.decision).toBe('injected');
    if (out.decision !== 'injected') return;
    expect(out.profiles).toEqual(['shop/db-proxy']);
    const stored = applyJsonPatch(pod, out.patch);
    expect(stored).toEqual(out.pod);
    expect(statusOf(stored)).toMatchObject({ profiles: ['shop/db-proxy'], initContainers: ['db-proxy'], generations: { 'shop/db-proxy': 3 } });
    // nativeSidecar auto on a server with native sidecars; volumes and the app's mount as for a config profile
    expect(stored.spec!.initContainers![0]).toMatchObject({ name: 'db-proxy', restartPolicy: 'Always' });
    expect(stored.spec!.volumes!.map((v) => v.name)).toEqual(expect.arrayContaining(['proxy-config', 'scratch', 'creds', 'token', 'podinfo']));
    expect(stored.spec!.containers[0]!.volumeMounts).toContainEqual({ name: 'scratch', mountPath: '/var/run/db-proxy' });
    expect(out.warnings).toEqual([]);
  });

  test('config and tenant profiles together, in the order asked; only tenant ones carry a generation', () => {
    const pod = asking('db-proxy, log-shipper');
    const out = admitPod(pod, ctx(index(tenant('db-proxy', restrictedProfile(), { generation: 2 }))), enabled);
    expect(out.decision).toBe('injected');
    if (out.decision !== 'injected') return;
    expect(statusOf(applyJsonPatch(pod, out.patch))).toMatchObject({ profiles: ['shop/db-proxy', 'log-shipper'], generations: { 'shop/db-proxy': 2 } });
  });

  test('a config-only injection records no generations (the annotation stays what it was)', () => {
    const out = admitPod(asking('log-shipper'), ctx(index()), enabled);
    expect(out.decision === 'injected' && Object.keys(statusOf(out.pod))).toEqual(['profiles', 'containers', 'initContainers', 'volumes', 'revision']);
  });

  test('the tenant profile honours the pod overrides its spec allows', () => {
    const pod = asking('db-proxy');
    pod.metadata!.annotations!['sidecar-injector.io/db-proxy.cpu-limit'] = '250m';
    pod.metadata!.annotations!['sidecar-injector.io/db-proxy.image'] = 'registry.example.com/team/db-proxy:1.5';
    const out = admitPod(pod, ctx(index(tenant('db-proxy', restrictedProfile()))), enabled);
    expect(out.decision === 'injected' && out.pod.spec!.initContainers![0]).toMatchObject({
      image: 'registry.example.com/team/db-proxy:1.5',
      resources: { limits: { cpu: '250m' } },
    });
  });

  test('a container name the app already uses is a conflict, as for a config profile', () => {
    const pod = asking('db-proxy');
    pod.spec!.containers[0]!.name = 'db-proxy';
    expect(admitPod(pod, ctx(index(tenant('db-proxy', restrictedProfile()))), enabled).decision).toBe('conflict');
  });
});

describe('what is not accepted is never injected, and the pod is told', () => {
  const cases: [string, TenantProfile, Parameters<typeof testConfig>[0], RegExp][] = [
    ['outside the floor', tenant('db-proxy', privileged()), LIMITS_YAML, /^sidecar profile shop\/db-proxy not injected \(OutsideLimits\): spec\.containers\[0\]\.securityContext\.privileged/],
    ['tenant profiles off', tenant('db-proxy', restrictedProfile()), '', /^sidecar profile shop\/db-proxy not injected \(NotServed\): tenant profiles are not enabled/],
    ['spec not a profile', tenant('db-proxy', undefined, { specProblems: ['spec.containers[0].name: required'] }), LIMITS_YAML, /\(Invalid\): spec\.containers\[0\]\.name: required/],
  ];
  test.each(cases)('%s: admitted without it, with a warning naming the profile and the reason', (_what, t, yaml, warning) => {
    const out = admitPod(asking('db-proxy'), ctx(index(t)), testConfig(yaml));
    expect(out.decision).toBe('skipped');
    expect(out.warnings[0]).toMatch(warning);
  });

  test('a namespace the namespaceSelector leaves out is not served', () => {
    const c = testConfig(`${LIMITS_YAML}  namespaceSelector: { matchLabels: { tenants: allowed } }\n`);
    const t = index(tenant('db-proxy', restrictedProfile()));
    expect(admitPod(asking('db-proxy'), ctx(t, 'shop', {}), c).warnings[0]).toContain('(NotServed): namespace shop is not selected');
    expect(admitPod(asking('db-proxy'), ctx(t, 'shop', { tenants: 'allowed' }), c).decision).toBe('injected');
  });

  test('a name the config also has means the config profile; the tenant one is Shadowed', () => {
    const t = tenant('log-shipper', restrictedProfile());
    const out = admitPod(asking('log-shipper'), ctx(index(t)), enabled);
    expect(out.decision === 'injected' && statusOf(out.pod)).toMatchObject({ profiles: ['log-shipper'], containers: ['log-shipper'] });
    expect(tenantVerdict(t, {}, enabled)).toMatchObject({ accepted: false, reason: 'Shadowed' });
  });

  test('a profile of another namespace is never reachable, whatever the lookup hands over', () => {
    const foreign = index(tenant('db-proxy', restrictedProfile(), { namespace: 'other' }));
    const out = admitPod(asking('db-proxy'), ctx(foreign), enabled);
    expect(out.decision).toBe('skipped');
    expect(out.warnings[0]).toBe('unknown sidecar profile "db-proxy" ignored');
    const spoofed = admitPod(asking('other/db-proxy'), ctx(foreign), enabled);
    expect(spoofed.decision).toBe('skipped');
  });

  test('property: whatever the profile and the wish, nothing outside the limits is injected, and only into its namespace', () => {
    fc.assert(
      fc.property(tenantProfile, fc.constantFrom('shop', 'other'), fc.constantFrom('db-proxy', 'db-proxy,metrics', 'true', 'shop/db-proxy'), (spec, podNamespace, wish) => {
        const t = tenant('db-proxy', spec);
        const out = admitPod(asking(wish, podNamespace), ctx(podNamespace === 'shop' ? index(t) : undefined, podNamespace), enabled);
        const injectedTenant = out.decision === 'injected' && out.profiles.includes('shop/db-proxy');
        const accepted = judgeProfile(spec, enabled.config.tenantProfiles).accepted;
        if (injectedTenant) {
          expect(accepted).toBe(true);
          expect(podNamespace).toBe('shop');
        }
        if (podNamespace === 'shop' && wish.split(',').includes('db-proxy') && !accepted) {
          expect(out.warnings.some((w) => w.startsWith('sidecar profile shop/db-proxy not injected (OutsideLimits)'))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('matchConditions stay sound', () => {
  test('a pod that asks for a tenant profile is sent to the webhook', () => {
    expect(conditionsHold(matchConditionsFor(enabled), asking('db-proxy'))).toBe(true);
    expect(conditionsHold(matchConditionsFor(enabled), asking('anything-a-team-names'))).toBe(true);
  });
});

describe('readSidecarProfile: an object of the API into what the core judges', () => {
  test('identity, generation and the spec read as a config profile', () => {
    const r = readSidecarProfile({
      apiVersion: 'sidecar-injector.io/v1alpha1',
      kind: 'SidecarProfile',
      metadata: { name: 'db-proxy', namespace: 'shop', generation: 4 },
      spec: restrictedProfile(),
    });
    expect(r).toEqual({ ok: true, tenant: { namespace: 'shop', name: 'db-proxy', generation: 4, profile: restrictedProfile(), specProblems: [] } });
  });

  test('a spec that is not a profile is kept with its problems; a document without identity is refused, saying where', () => {
    const bad = readSidecarProfile({ apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile', metadata: { name: 'x', namespace: 'shop' }, spec: { containers: [{}] } });
    expect(bad.ok && bad.tenant.specProblems.length > 0 && bad.tenant.profile === undefined).toBe(true);
    expect(readSidecarProfile({ apiVersion: 'sidecar-injector.io/v1', kind: 'SidecarProfile', metadata: { name: 'x' } })).toEqual({
      ok: false,
      error: 'apiVersion: must be sidecar-injector.io/v1alpha1, not "sidecar-injector.io/v1"',
    });
    expect(readSidecarProfile({ apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile', metadata: { name: 'x' } })).toEqual({
      ok: false,
      error: 'metadata.namespace: required for SidecarProfile x (or give a namespace)',
    });
  });
});
