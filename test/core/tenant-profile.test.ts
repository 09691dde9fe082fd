/**
 * Tenant profiles (SPEC 9, issue 30): the core judgment of a SidecarProfile
 * against the config's limits and the fixed floor. One test per rule,
 * accepted and refused, with the exact path and message; then properties
 * over generated profiles and limits (fast-check, seeded): problems name
 * fields of the profile, fixing exactly those fields is enough, accepted
 * profiles hold no privileged or host fields, and tighter limits never
 * accept what looser ones refused.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { Profile } from '../../src/core/config.js';
import { imageAllowed } from '../../src/core/image-registry.js';
import { compareQuantities } from '../../src/core/quantity.js';
import { formatProblem, judgeProfile, TENANT_RULES, type ProfileLimits, type ProfileProblem } from '../../src/core/tenant-profile.js';
import { validateProfileSpec } from '../../src/config/schema.js';
import { CPU_CEILINGS, LIMITS, MEMORY_CEILINGS, REGISTRY_POOL, limits as generatedLimits, restrictedProfile, tenantProfile } from '../helpers/tenant-profiles.js';

const SEED = Number(process.env.PROPERTY_SEED ?? 20261230);
/** Cases per property; `npm run mutation` lowers it. */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);

type Obj = Record<string, unknown>;
type Edit = (p: Profile & Obj, c: Obj) => void;

/** The restricted profile, edited: `c` is its first container. */
function edited(edit: Edit): Profile {
  const p = restrictedProfile() as Profile & Obj;
  edit(p, p.containers[0] as unknown as Obj);
  return p;
}
const sc = (c: Obj) => c.securityContext as Obj;
const problemsOf = (p: Profile, l: ProfileLimits = LIMITS) => judgeProfile(p, l).problems.map(formatProblem);

const C = 'spec.containers[0]';
const SC = `${C}.securityContext`;

describe('judgeProfile: the restricted sidecar', () => {
  it('is accepted under the limits, and is a valid profile for the config schema', () => {
    expect(judgeProfile(restrictedProfile(), LIMITS)).toEqual({ accepted: true, problems: [] });
    expect(validateProfileSpec(restrictedProfile())).toEqual({ ok: true, profile: expect.anything() });
  });

  it('an empty profile is accepted (nothing to refuse)', () => {
    expect(judgeProfile({ nativeSidecar: false, containers: [], initContainers: [], volumes: [], appVolumeMounts: [], overrides: { resources: false, imageRegistries: [] } }, LIMITS).accepted).toBe(true);
  });
});

// [case, edit, the exact problems]
const floor: [string, Edit, string[]][] = [
  // privileged (SPEC 9; PSS baseline "privileged")
  ['privileged: true', (_, c) => (sc(c).privileged = true), [`${SC}.privileged: must be false or unset, not true (rule privileged)`]],
  ['privileged: false', (_, c) => (sc(c).privileged = false), []],
  ['privileged: null', (_, c) => (sc(c).privileged = null), []],
  // added capabilities (SPEC 9), drop ALL (PSS restricted "capabilities_restricted")
  ['capabilities.add: [NET_BIND_SERVICE]', (_, c) => ((sc(c).capabilities as Obj).add = ['NET_BIND_SERVICE']), [`${SC}.capabilities.add: must be empty, not ["NET_BIND_SERVICE"]: tenant profiles add no capabilities (rule addedCapabilities)`]],
  ['capabilities.add: [SYS_ADMIN]', (_, c) => ((sc(c).capabilities as Obj).add = ['SYS_ADMIN']), [`${SC}.capabilities.add: must be empty, not ["SYS_ADMIN"]: tenant profiles add no capabilities (rule addedCapabilities)`]],
  ['capabilities.add: []', (_, c) => ((sc(c).capabilities as Obj).add = []), []],
  ['capabilities missing', (_, c) => delete sc(c).capabilities, [`${SC}.capabilities.drop: required: must include "ALL" (rule capabilities_restricted)`]],
  ['capabilities.drop: [NET_RAW]', (_, c) => ((sc(c).capabilities as Obj).drop = ['NET_RAW']), [`${SC}.capabilities.drop: must include "ALL", not ["NET_RAW"] (rule capabilities_restricted)`]],
  ['capabilities.drop: [NET_RAW, ALL]', (_, c) => ((sc(c).capabilities as Obj).drop = ['NET_RAW', 'ALL']), []],
  // allowPrivilegeEscalation (SPEC 9: other than false; PSS restricted)
  ['allowPrivilegeEscalation: true', (_, c) => (sc(c).allowPrivilegeEscalation = true), [`${SC}.allowPrivilegeEscalation: must be false, not true (rule allowPrivilegeEscalation)`]],
  ['allowPrivilegeEscalation unset', (_, c) => delete sc(c).allowPrivilegeEscalation, [`${SC}.allowPrivilegeEscalation: required: must be false (rule allowPrivilegeEscalation)`]],
  // runAsNonRoot (PSS restricted; no pod-level help for a sidecar)
  ['runAsNonRoot: false', (_, c) => (sc(c).runAsNonRoot = false), [`${SC}.runAsNonRoot: must be true, not false (rule runAsNonRoot)`]],
  ['runAsNonRoot unset', (_, c) => delete sc(c).runAsNonRoot, [`${SC}.runAsNonRoot: required: must be true (rule runAsNonRoot)`]],
  // runAsUser (PSS restricted)
  ['runAsUser: 0', (_, c) => (sc(c).runAsUser = 0), [`${SC}.runAsUser: must not be 0 (root) (rule runAsUser)`]],
  ['runAsUser: 1000', (_, c) => (sc(c).runAsUser = 1000), []],
  // seccompProfile (PSS restricted "seccompProfile_restricted")
  ['seccompProfile Unconfined', (_, c) => (sc(c).seccompProfile = { type: 'Unconfined' }), [`${SC}.seccompProfile.type: must be RuntimeDefault or Localhost, not "Unconfined" (rule seccompProfile_restricted)`]],
  ['seccompProfile unset', (_, c) => delete sc(c).seccompProfile, [`${SC}.seccompProfile.type: required: must be RuntimeDefault or Localhost (rule seccompProfile_restricted)`]],
  ['seccompProfile Localhost', (_, c) => (sc(c).seccompProfile = { type: 'Localhost', localhostProfile: 'profiles/proxy.json' }), []],
  ['no securityContext at all', (_, c) => delete c.securityContext, [
    `${SC}.capabilities.drop: required: must include "ALL" (rule capabilities_restricted)`,
    `${SC}.allowPrivilegeEscalation: required: must be false (rule allowPrivilegeEscalation)`,
    `${SC}.runAsNonRoot: required: must be true (rule runAsNonRoot)`,
    `${SC}.seccompProfile.type: required: must be RuntimeDefault or Localhost (rule seccompProfile_restricted)`,
  ]],
  // appArmorProfile (PSS baseline)
  ['appArmorProfile Unconfined', (_, c) => (sc(c).appArmorProfile = { type: 'Unconfined' }), [`${SC}.appArmorProfile.type: must be RuntimeDefault or Localhost, not "Unconfined" (rule appArmorProfile)`]],
  ['appArmorProfile RuntimeDefault', (_, c) => (sc(c).appArmorProfile = { type: 'RuntimeDefault' }), []],
  // seLinuxOptions (PSS baseline)
  ['seLinuxOptions type spc_t', (_, c) => (sc(c).seLinuxOptions = { type: 'spc_t' }), [`${SC}.seLinuxOptions.type: must be container_t, container_init_t, container_kvm_t, container_engine_t or empty, not "spc_t" (rule seLinuxOptions)`]],
  ['seLinuxOptions user and role', (_, c) => (sc(c).seLinuxOptions = { user: 'system_u', role: 'sysadm_r' }), [
    `${SC}.seLinuxOptions.user: must be empty, not "system_u" (rule seLinuxOptions)`,
    `${SC}.seLinuxOptions.role: must be empty, not "sysadm_r" (rule seLinuxOptions)`,
  ]],
  ['seLinuxOptions container_t with a level', (_, c) => (sc(c).seLinuxOptions = { type: 'container_t', level: 's0:c1,c2' }), []],
  // procMount (PSS restricted "procMount_restricted": no user-namespace relaxation)
  ['procMount Unmasked', (_, c) => (sc(c).procMount = 'Unmasked'), [`${SC}.procMount: must be Default or unset, not "Unmasked" (rule procMount_restricted)`]],
  ['procMount Default', (_, c) => (sc(c).procMount = 'Default'), []],
  // windowsOptions.hostProcess (PSS baseline "windowsHostProcess")
  ['windowsOptions.hostProcess: true', (_, c) => (sc(c).windowsOptions = { hostProcess: true }), [`${SC}.windowsOptions.hostProcess: must be false or unset, not true (rule windowsHostProcess)`]],
  ['windowsOptions.hostProcess: false', (_, c) => (sc(c).windowsOptions = { hostProcess: false }), []],
  // host ports (SPEC 9; PSS baseline "hostPorts"), hostIP with them
  ['ports[].hostPort: 5432', (_, c) => ((c.ports as Obj[])[0]!.hostPort = 5432), [`${C}.ports[0].hostPort: must be 0 or unset, not 5432: tenant profiles use no host ports (rule hostPorts)`]],
  ['ports[].hostPort: 0', (_, c) => ((c.ports as Obj[])[0]!.hostPort = 0), []],
  ['ports[].hostIP', (_, c) => ((c.ports as Obj[])[0]!.hostIP = '0.0.0.0'), [`${C}.ports[0].hostIP: must be empty, not "0.0.0.0": tenant profiles use no host ports (rule hostPorts)`]],
  // probe and lifecycle hosts (PSS baseline "hostProbesAndHostLifecycle", 1.34+)
  ['readinessProbe.tcpSocket.host', (_, c) => (c.readinessProbe = { tcpSocket: { port: 5432, host: 'db.internal' } }), [`${C}.readinessProbe.tcpSocket.host: must be empty, not "db.internal": probes and hooks reach the pod, not another host (rule hostProbesAndHostLifecycle)`]],
  ['livenessProbe.httpGet.host', (_, c) => (c.livenessProbe = { httpGet: { port: 80, host: '169.254.169.254' } }), [`${C}.livenessProbe.httpGet.host: must be empty, not "169.254.169.254": probes and hooks reach the pod, not another host (rule hostProbesAndHostLifecycle)`]],
  ['startupProbe.httpGet.host empty', (_, c) => (c.startupProbe = { httpGet: { port: 80, host: '' } }), []],
  ['lifecycle.preStop.httpGet.host', (_, c) => (c.lifecycle = { preStop: { httpGet: { port: 80, host: 'example.com' } } }), [`${C}.lifecycle.preStop.httpGet.host: must be empty, not "example.com": probes and hooks reach the pod, not another host (rule hostProbesAndHostLifecycle)`]],
  ['lifecycle.postStart.tcpSocket.host', (_, c) => (c.lifecycle = { postStart: { tcpSocket: { port: 1, host: '10.0.0.1' } } }), [`${C}.lifecycle.postStart.tcpSocket.host: must be empty, not "10.0.0.1": probes and hooks reach the pod, not another host (rule hostProbesAndHostLifecycle)`]],
  // host namespaces (SPEC 9; PSS baseline "hostNamespaces"): pod-level, not a profile field, judged anyway
  ['spec.hostNetwork: true', (p) => ((p as Obj).hostNetwork = true), [`spec.hostNetwork: must be false or unset, not true: tenant profiles never share the host's namespaces (rule hostNamespaces)`]],
  ['spec.hostPID: true', (p) => ((p as Obj).hostPID = true), [`spec.hostPID: must be false or unset, not true: tenant profiles never share the host's namespaces (rule hostNamespaces)`]],
  // volume kinds (SPEC 9; PSS baseline "hostPathVolumes", stricter than restricted "restrictedVolumes")
  ['a hostPath volume', (p) => p.volumes.push({ name: 'sock', hostPath: { path: '/var/run/docker.sock' } }), [`spec.volumes[5].hostPath: hostPath volumes are not allowed in tenant profiles (rule hostPathVolumes)`]],
  ['a persistentVolumeClaim volume', (p) => p.volumes.push({ name: 'data', persistentVolumeClaim: { claimName: 'data' } }), [`spec.volumes[5].persistentVolumeClaim: persistentVolumeClaim volumes are not allowed in tenant profiles (allowed: emptyDir, configMap, secret, projected, downwardAPI) (rule volumeKinds)`]],
  ['a csi volume', (p) => p.volumes.push({ name: 'secrets', csi: { driver: 'secrets-store.csi.k8s.io' } }), [`spec.volumes[5].csi: csi volumes are not allowed in tenant profiles (allowed: emptyDir, configMap, secret, projected, downwardAPI) (rule volumeKinds)`]],
  ['an nfs volume', (p) => p.volumes.push({ name: 'share', nfs: { server: 'nfs', path: '/' } }), [`spec.volumes[5].nfs: nfs volumes are not allowed in tenant profiles (allowed: emptyDir, configMap, secret, projected, downwardAPI) (rule volumeKinds)`]],
];

describe('judgeProfile: the fixed floor (SPEC 9 and the restricted Pod Security Standard), whatever the limits', () => {
  it.each(floor)('%s', (_name, edit, expected) => {
    const p = edited(edit);
    expect(problemsOf(p)).toEqual(expected);
    // The floor does not move with the limits: none at all, or stricter ones, give the same floor problems.
    expect(problemsOf(p, { allowedRegistries: [], maxResources: {} })).toEqual(expected);
    expect(judgeProfile(p, LIMITS).accepted).toBe(expected.length === 0);
  });

  it('judges init containers and native sidecars alike, with their own paths', () => {
    const p = edited((q) => q.initContainers.push({ ...structuredClone(q.containers[0]!), name: 'setup', securityContext: { privileged: true } }));
    expect(problemsOf(p)).toEqual([
      'spec.initContainers[0].securityContext.privileged: must be false or unset, not true (rule privileged)',
      'spec.initContainers[0].securityContext.capabilities.drop: required: must include "ALL" (rule capabilities_restricted)',
      'spec.initContainers[0].securityContext.allowPrivilegeEscalation: required: must be false (rule allowPrivilegeEscalation)',
      'spec.initContainers[0].securityContext.runAsNonRoot: required: must be true (rule runAsNonRoot)',
      'spec.initContainers[0].securityContext.seccompProfile.type: required: must be RuntimeDefault or Localhost (rule seccompProfile_restricted)',
    ]);
  });

  it('reports every problem, in the order of the fields, each with its value', () => {
    const p = edited((q, c) => {
      sc(c).privileged = true;
      (c.ports as Obj[])[0]!.hostPort = 80;
      q.volumes.push({ name: 'root', hostPath: { path: '/' } });
    });
    expect(judgeProfile(p, LIMITS)).toEqual({
      accepted: false,
      problems: [
        { path: `${SC}.privileged`, rule: 'privileged', value: true, message: 'must be false or unset, not true' },
        { path: `${C}.ports[0].hostPort`, rule: 'hostPorts', value: 80, message: 'must be 0 or unset, not 80: tenant profiles use no host ports' },
        { path: 'spec.volumes[5].hostPath', rule: 'hostPathVolumes', value: { path: '/' }, message: 'hostPath volumes are not allowed in tenant profiles' },
      ],
    });
  });

  it('every rule says where it comes from', () => {
    for (const [rule, source] of Object.entries(TENANT_RULES)) expect({ rule, source }).toEqual({ rule, source: expect.stringMatching(/SPEC 9|Pod Security Standards check /) });
  });
});

describe('judgeProfile: tenantProfiles.allowedRegistries', () => {
  const image = (ref: string) => edited((_, c) => (c.image = ref));
  it.each([
    ['registry.example.com/team/db-proxy:1.4', []],
    ['registry.example.com/team/tools/db-proxy@sha256:0123', []],
    ['registry.example.com/other/db-proxy:1.4', [`${C}.image: image "registry.example.com/other/db-proxy:1.4" is not from an allowed registry (registry.example.com/team/) (rule allowedRegistries)`]],
    ['docker.io/library/busybox', [`${C}.image: image "docker.io/library/busybox" is not from an allowed registry (registry.example.com/team/) (rule allowedRegistries)`]],
    ['busybox', [`${C}.image: image "busybox" is not from an allowed registry (registry.example.com/team/) (rule allowedRegistries)`]],
  ])('%s', (ref, expected) => {
    expect(problemsOf(image(ref))).toEqual(expected);
  });

  it('a prefix matches at a path boundary, as for image overrides (one function: image-registry.ts)', () => {
    const l = (allowedRegistries: string[]) => ({ allowedRegistries, maxResources: {} });
    expect(judgeProfile(image('registry.example.com/x:1'), l(['registry.example.com'])).accepted).toBe(true);
    expect(judgeProfile(image('registry.example.com:5000/x:1'), l(['registry.example.com'])).accepted).toBe(true);
    expect(problemsOf(image('registry.example.com.evil.io/x:1'), l(['registry.example.com']))).toEqual([`${C}.image: image "registry.example.com.evil.io/x:1" is not from an allowed registry (registry.example.com) (rule allowedRegistries)`]);
    expect(imageAllowed('registry.example.com.evil.io/x', ['registry.example.com'])).toBe(false);
  });

  it('no list: any registry', () => {
    expect(judgeProfile(image('docker.io/library/busybox'), { allowedRegistries: [], maxResources: LIMITS.maxResources }).accepted).toBe(true);
  });

  it('image override prefixes must lie inside an allowed registry', () => {
    const overrides = (...imageRegistries: string[]) => edited((p) => (p.overrides.imageRegistries = imageRegistries));
    expect(problemsOf(overrides('registry.example.com/team/', 'registry.example.com/team/tools/'))).toEqual([]);
    expect(problemsOf(overrides('registry.example.com/team/tools/', 'docker.io/'))).toEqual([
      'spec.overrides.imageRegistries[1]: image overrides from "docker.io/" could leave the allowed registries (registry.example.com/team/) (rule allowedRegistries)',
    ]);
    // Without the slash, the prefix would admit registry.example.com/team-b/... too.
    expect(problemsOf(overrides('registry.example.com/team'))).toEqual([
      'spec.overrides.imageRegistries[0]: image overrides from "registry.example.com/team" could leave the allowed registries (registry.example.com/team/) (rule allowedRegistries)',
    ]);
    expect(judgeProfile(overrides('docker.io/'), { allowedRegistries: [], maxResources: {} }).accepted).toBe(true);
  });

  it('judges init containers too', () => {
    const p = edited((q) => q.initContainers.push({ ...structuredClone(q.containers[0]!), name: 'setup', image: 'busybox:1.36' }));
    expect(problemsOf(p)).toEqual([`spec.initContainers[0].image: image "busybox:1.36" is not from an allowed registry (registry.example.com/team/) (rule allowedRegistries)`]);
  });
});

describe('judgeProfile: tenantProfiles.maxResources (limits must be set and within; requests within)', () => {
  const resources = (r: Obj | undefined) => edited((_, c) => (r === undefined ? delete c.resources : (c.resources = r)));
  it.each<[string, Obj | undefined, string[]]>([
    ['within', { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } }, []],
    ['at the ceilings, written otherwise (exact comparison)', { limits: { cpu: '0.5', memory: '268435456' } }, []],
    ['numbers', { limits: { cpu: 0.5, memory: 1024 } }, []],
    ['no resources: both limits required', undefined, [
      `${C}.resources.limits.cpu: required: a cpu limit of at most 500m (rule maxResources)`,
      `${C}.resources.limits.memory: required: a memory limit of at most 256Mi (rule maxResources)`,
    ]],
    ['requests only: limits required', { requests: { cpu: '10m', memory: '16Mi' } }, [
      `${C}.resources.limits.cpu: required: a cpu limit of at most 500m (rule maxResources)`,
      `${C}.resources.limits.memory: required: a memory limit of at most 256Mi (rule maxResources)`,
    ]],
    ['limits above', { limits: { cpu: '501m', memory: '257Mi' } }, [
      `${C}.resources.limits.cpu: 501m is above the ceiling 500m (rule maxResources)`,
      `${C}.resources.limits.memory: 257Mi is above the ceiling 256Mi (rule maxResources)`,
    ]],
    ['a request above (and its limit above)', { requests: { cpu: '1' }, limits: { cpu: '2', memory: '1Gi' } }, [
      `${C}.resources.limits.cpu: 2 is above the ceiling 500m (rule maxResources)`,
      `${C}.resources.requests.cpu: 1 is above the ceiling 500m (rule maxResources)`,
      `${C}.resources.limits.memory: 1Gi is above the ceiling 256Mi (rule maxResources)`,
    ]],
    ['not a quantity', { limits: { cpu: 'lots', memory: '256Mi' } }, [`${C}.resources.limits.cpu: must be a quantity of at most 500m, not "lots" (rule maxResources)`]],
  ])('%s', (_name, r, expected) => {
    expect(problemsOf(resources(r))).toEqual(expected);
  });

  it('only the capped resources must be set', () => {
    const p = resources({ limits: { cpu: '200m' } });
    expect(judgeProfile(p, { allowedRegistries: [], maxResources: { cpu: '500m' } }).accepted).toBe(true);
    expect(judgeProfile(resources(undefined), { allowedRegistries: [], maxResources: {} }).accepted).toBe(true);
  });

  it('compares exactly: 9m is 0.009, not above it', () => {
    expect(9 * 1e-3 > 0.009).toBe(true); // what floating point would say
    expect(judgeProfile(resources({ limits: { cpu: '9m' } }), { allowedRegistries: [], maxResources: { cpu: '0.009' } }).accepted).toBe(true);
    expect(compareQuantities('9m', '0.009')).toBe(0);
  });
});

// ---- properties ----

/** `spec.containers[0].securityContext.privileged` → ['containers', 0, 'securityContext', 'privileged'] */
function keysOf(path: string): (string | number)[] {
  expect(path.startsWith('spec.') || path.startsWith('spec[')).toBe(true);
  return [...path.slice('spec'.length).matchAll(/\.([A-Za-z]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

function valueAt(root: unknown, keys: readonly (string | number)[]): { found: boolean; value: unknown } {
  let here: unknown = root;
  for (const k of keys) {
    if (here === null || typeof here !== 'object' || !Object.hasOwn(here, k)) return { found: false, value: undefined };
    here = (here as Obj)[k as string];
  }
  return { found: true, value: here };
}

function setAt(root: Obj, keys: readonly (string | number)[], value: unknown): void {
  let here = root;
  for (const k of keys.slice(0, -1)) {
    const next = here[k as string];
    here = (next !== null && typeof next === 'object' ? next : (here[k as string] = {})) as Obj;
  }
  here[keys[keys.length - 1] as string] = value;
}

function removeAt(root: Obj, keys: readonly (string | number)[]): void {
  const parent = valueAt(root, keys.slice(0, -1)).value as Obj;
  Reflect.deleteProperty(parent, keys[keys.length - 1] as string);
}

/** The profile with exactly the fields named by the problems fixed: offending ones removed, required ones set to what the rule requires. */
function repaired(profile: Profile, problems: readonly ProfileProblem[], l: ProfileLimits): Profile {
  const p = structuredClone(profile) as unknown as Obj;
  for (const problem of problems) {
    const keys = keysOf(problem.path);
    const last = keys[keys.length - 1];
    switch (problem.rule) {
      case 'allowPrivilegeEscalation':
        setAt(p, keys, false);
        break;
      case 'runAsNonRoot':
        setAt(p, keys, true);
        break;
      case 'seccompProfile_restricted':
        setAt(p, keys.slice(0, -1), { type: 'RuntimeDefault' });
        break;
      case 'capabilities_restricted':
        setAt(p, keys, ['ALL']);
        break;
      case 'appArmorProfile':
        // Its type is required once it is there (the API server's validation, and this rule): the whole profile goes.
        removeAt(p, keys.slice(0, -1));
        break;
      case 'maxResources':
        if (keys.includes('limits')) setAt(p, keys, l.maxResources[last as 'cpu' | 'memory']);
        else removeAt(p, keys);
        break;
      case 'allowedRegistries': {
        const prefix = l.allowedRegistries[0]!;
        setAt(p, keys, last === 'image' ? `${prefix}${/[/:]$/.test(prefix) ? '' : '/'}agent:1` : prefix);
        break;
      }
      default:
        removeAt(p, keys);
    }
  }
  return p as unknown as Profile;
}

/** Every `privileged` and `host*` field anywhere in the profile, with its value. */
function privilegedOrHostFields(v: unknown, at = 'spec'): [string, unknown][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => privilegedOrHostFields(x, `${at}[${i}]`));
  if (v === null || typeof v !== 'object') return [];
  return Object.entries(v).flatMap(([k, x]) => [...(k === 'privileged' || k.startsWith('host') ? [[`${at}.${k}`, x] as [string, unknown]] : []), ...privilegedOrHostFields(x, `${at}.${k}`)]);
}

/** Limits at least as tight as `loose`: registries inside its registries (none only if it has none), ceilings at or below its own. */
function tighter(loose: ProfileLimits): fc.Arbitrary<ProfileLimits> {
  const inside = REGISTRY_POOL.filter((p) => loose.allowedRegistries.length === 0 || imageAllowed(p, loose.allowedRegistries));
  const ceiling = (pool: string[], current: string | undefined) => {
    const lower = pool.filter((c) => current === undefined || compareQuantities(c, current)! <= 0);
    return current === undefined ? fc.option(fc.constantFrom(...lower), { nil: undefined }) : fc.constantFrom(...lower);
  };
  return fc
    .record({
      allowedRegistries: fc.subarray(inside, { minLength: loose.allowedRegistries.length > 0 ? 1 : 0 }),
      cpu: ceiling(CPU_CEILINGS, loose.maxResources.cpu),
      memory: ceiling(MEMORY_CEILINGS, loose.maxResources.memory),
    })
    .map(({ allowedRegistries, cpu, memory }) => ({ allowedRegistries, maxResources: { ...(cpu && { cpu }), ...(memory && { memory }) } }));
}

const key = (p: ProfileProblem) => `${p.path} ${p.rule}`;

describe(`judgeProfile: properties over generated profiles and limits (fast-check, seed ${SEED})`, () => {
  it('accepted, or every problem names a field of the profile (holding the value shown, or missing where a field is required)', () => {
    fc.assert(
      fc.property(tenantProfile, generatedLimits, (profile, l) => {
        const before = structuredClone(profile);
        const { accepted, problems } = judgeProfile(profile, l);
        expect(profile).toEqual(before); // pure: the input is left alone
        expect(accepted).toBe(problems.length === 0);
        for (const problem of problems) {
          expect(Object.keys(TENANT_RULES)).toContain(problem.rule);
          expect(formatProblem(problem)).toBe(`${problem.path}: ${problem.message} (rule ${problem.rule})`);
          const keys = keysOf(problem.path);
          const found = valueAt(profile, keys);
          if (problem.value === undefined || problem.value === null) {
            // A required field that is missing: it is unset, inside a container of the profile.
            expect(found.value ?? null).toBeNull();
            expect(keys.length).toBeGreaterThan(2);
            expect(valueAt(profile, keys.slice(0, 2)).found).toBe(true);
          } else {
            expect(found).toEqual({ found: true, value: problem.value });
          }
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('fixing exactly the fields named (removing offending ones, setting required ones) makes the profile acceptable', () => {
    let refused = 0;
    fc.assert(
      fc.property(tenantProfile, generatedLimits, (profile, l) => {
        const { problems } = judgeProfile(profile, l);
        if (problems.length > 0) refused++;
        expect(judgeProfile(repaired(profile, problems, l), l)).toEqual({ accepted: true, problems: [] });
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
    // The generator exercises both sides.
    expect(refused).toBeGreaterThan(RUNS / 4);
    expect(refused).toBeLessThan(RUNS);
  });

  it('an accepted profile holds no privileged or host field but at its unset value', () => {
    let accepted = 0;
    fc.assert(
      fc.property(tenantProfile, generatedLimits, (profile, l) => {
        if (!judgeProfile(profile, l).accepted) return;
        accepted++;
        for (const [path, value] of privilegedOrHostFields(profile)) expect({ path, value: [undefined, null, false, 0, ''].includes(value as never) ? 'unset' : value }).toEqual({ path, value: 'unset' });
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
    expect(accepted).toBeGreaterThan(RUNS / 20);
  });

  it('tighter limits never accept what looser ones refused: every problem stays', () => {
    fc.assert(
      fc.property(
        tenantProfile,
        generatedLimits.chain((loose) => fc.tuple(fc.constant(loose), tighter(loose))),
        (profile, [loose, tight]) => {
          const before = judgeProfile(profile, loose);
          const after = judgeProfile(profile, tight);
          if (!before.accepted) expect(after.accepted).toBe(false);
          expect(after.problems.map(key)).toEqual(expect.arrayContaining(before.problems.map(key)));
        },
      ),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });

  it('the floor does not depend on the limits', () => {
    const isFloor = (p: ProfileProblem) => p.rule !== 'allowedRegistries' && p.rule !== 'maxResources';
    fc.assert(
      fc.property(tenantProfile, generatedLimits, generatedLimits, (profile, a, b) => {
        expect(judgeProfile(profile, a).problems.filter(isFloor)).toEqual(judgeProfile(profile, b).problems.filter(isFloor));
      }),
      { seed: SEED + 4, numRuns: RUNS },
    );
  });
});
