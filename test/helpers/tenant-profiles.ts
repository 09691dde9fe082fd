/**
 * Tenant profiles (SPEC 9) for tests: a restricted sidecar that every rule
 * accepts, and fast-check arbitraries for SidecarProfile specs and limits.
 * Every field is drawn safe most of the time and offending now and then
 * (privileged, capabilities, host ports and paths, probe hosts, volume kinds,
 * registries, resources), so that generated profiles are accepted often
 * enough and refused for one or several reasons.
 */
import fc from 'fast-check';
import type { Profile } from '../../src/core/config.js';
import type { ProfileLimits } from '../../src/core/tenant-profile.js';

/** A securityContext the restricted Pod Security Standard accepts on its own (no pod-level help). */
export const RESTRICTED_SECURITY_CONTEXT = {
  allowPrivilegeEscalation: false,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** A SidecarProfile spec that the fixed floor and LIMITS accept. */
export function restrictedProfile(): Profile {
  return {
    nativeSidecar: 'auto',
    containers: [
      {
        name: 'db-proxy',
        image: 'registry.example.com/team/db-proxy:1.4',
        ports: [{ containerPort: 5432 }],
        resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
        securityContext: structuredClone(RESTRICTED_SECURITY_CONTEXT),
        readinessProbe: { tcpSocket: { port: 5432 } },
        volumeMounts: [{ name: 'proxy-config', mountPath: '/etc/proxy', readOnly: true }],
      },
    ],
    initContainers: [],
    volumes: [
      { name: 'proxy-config', configMap: { name: 'db-proxy' } },
      { name: 'scratch', emptyDir: {} },
      { name: 'creds', secret: { secretName: 'db-proxy' } },
      { name: 'token', projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'db' } }] } },
      { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
    ],
    appVolumeMounts: [{ name: 'scratch', mountPath: '/var/run/db-proxy' }],
    overrides: { resources: true, imageRegistries: ['registry.example.com/team/'] },
  };
}

export const LIMITS: ProfileLimits = { allowedRegistries: ['registry.example.com/team/'], maxResources: { cpu: '500m', memory: '256Mi' } };

/** Mostly `safe`, sometimes one of `risky`. */
function mostly<T>(safe: T, ...risky: T[]): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constant(safe), weight: 12 }, { arbitrary: fc.constantFrom(...risky), weight: 1 });
}

/** Drops the keys whose value is undefined (an unset field, as in YAML). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const securityContext = fc
  .record({
    privileged: mostly<boolean | null | undefined>(undefined, true, false, null),
    allowPrivilegeEscalation: mostly<boolean | undefined>(false, true, undefined),
    runAsNonRoot: mostly<boolean | undefined>(true, false, undefined),
    runAsUser: mostly<number | undefined>(undefined, 0, 1000),
    capabilities: mostly<object | undefined>({ drop: ['ALL'] }, undefined, { drop: ['NET_RAW'] }, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, { drop: ['ALL'], add: ['SYS_ADMIN', 'NET_ADMIN'] }, { drop: ['ALL'], add: [] }),
    seccompProfile: mostly<object | undefined>({ type: 'RuntimeDefault' }, { type: 'Localhost', localhostProfile: 'profiles/agent.json' }, { type: 'Unconfined' }, undefined),
    appArmorProfile: mostly<object | undefined>(undefined, { type: 'RuntimeDefault' }, { type: 'Unconfined' }, { type: 'Localhost', localhostProfile: 'agent' }),
    seLinuxOptions: mostly<object | undefined>(undefined, { type: 'container_t' }, { type: 'spc_t' }, { user: 'system_u' }, { role: 'sysadm_r' }, { level: 's0:c1,c2' }),
    procMount: mostly<string | undefined>(undefined, 'Default', 'Unmasked'),
    windowsOptions: mostly<object | undefined>(undefined, { hostProcess: true }, { hostProcess: false }),
    readOnlyRootFilesystem: fc.constantFrom(undefined, true),
  })
  .map(defined);

const image = mostly('registry.example.com/team/agent:1.0', 'registry.example.com/other/agent:1.0', 'registry.example.com.evil.io/agent', 'docker.io/library/busybox:1.36', 'busybox', 'registry.example.com:5000/team/agent');
const resources = mostly<object | undefined>(
  { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
  undefined,
  { limits: { cpu: '2' } },
  { requests: { cpu: '600m' }, limits: { cpu: '1', memory: '1Gi' } },
  { limits: { cpu: '9m', memory: '268435456' } },
  { limits: { cpu: 0.5, memory: '256Mi' } },
);
const port = fc.record({ containerPort: fc.constantFrom(8080, 9100), hostPort: mostly<number | undefined>(undefined, 8080, 0), hostIP: mostly<string | undefined>(undefined, '', '127.0.0.1') }).map(defined);
const probe = mostly<object | undefined>(undefined, { httpGet: { port: 8080, path: '/ready' } }, { httpGet: { port: 8080, host: '169.254.169.254' } }, { tcpSocket: { port: 8080, host: 'db.internal' } }, { tcpSocket: { port: 8080, host: '' } });
const lifecycle = mostly<object | undefined>(undefined, { preStop: { httpGet: { port: 8080, host: 'example.com' } } }, { postStart: { tcpSocket: { port: 1, host: '10.0.0.1' } } }, { preStop: { sleep: { seconds: 5 } } });

const container = fc
  .record({
    image,
    ports: fc.array(port, { maxLength: 2 }),
    resources,
    securityContext: fc.option(securityContext, { nil: undefined, freq: 12 }),
    livenessProbe: probe,
    readinessProbe: probe,
    lifecycle,
  })
  .map(defined);
const containers = (max: number, prefix: string) => fc.array(container, { maxLength: max }).map((cs) => cs.map((c, i) => ({ name: `${prefix}-${i}`, ...c })));

const volumeSource = mostly<object>(
  { emptyDir: {} },
  { configMap: { name: 'cm' } },
  { secret: { secretName: 's' } },
  { projected: { sources: [] } },
  { downwardAPI: { items: [] } },
  { hostPath: { path: '/var/run/docker.sock' } },
  { persistentVolumeClaim: { claimName: 'data' } },
  { nfs: { server: 'nfs.internal', path: '/' } },
  { csi: { driver: 'secrets-store.csi.k8s.io' } },
  { ephemeral: { volumeClaimTemplate: { spec: {} } } },
);

/** A SidecarProfile spec: sidecars, init containers, volumes, override registries; pod-level host fields now and then. */
export const tenantProfile: fc.Arbitrary<Profile> = fc
  .record({
    nativeSidecar: fc.constantFrom<Profile['nativeSidecar']>(true, false, 'auto'),
    containers: containers(2, 'sidecar'),
    initContainers: containers(1, 'init'),
    volumes: fc.array(volumeSource, { maxLength: 3 }).map((sources) => sources.map((s, i) => ({ name: `v${i}`, ...s }))),
    imageRegistries: mostly<string[]>([], ['registry.example.com/team/'], ['registry.example.com/'], ['docker.io/'], ['registry.example.com']),
    resourcesOverride: fc.boolean(),
    hostNetwork: fc.oneof({ arbitrary: fc.constant(undefined), weight: 20 }, { arbitrary: fc.constantFrom(true, false), weight: 1 }),
  })
  .map(({ imageRegistries, resourcesOverride, hostNetwork, ...p }) => {
    const spec = { ...p, appVolumeMounts: [], overrides: { resources: resourcesOverride, imageRegistries } } as unknown as Profile;
    if (hostNetwork !== undefined) (spec as unknown as Record<string, unknown>).hostNetwork = hostNetwork;
    return spec;
  });

export const REGISTRY_POOL = ['registry.example.com/team/', 'registry.example.com/', 'registry.example.com', 'docker.io/library/', 'registry.example.com/other/'];
export const CPU_CEILINGS = ['9m', '100m', '0.5', '500m', '1', '2'];
export const MEMORY_CEILINGS = ['64Mi', '256Mi', '268435456', '1Gi'];

/** Limits: no registry list (any registry) or a few prefixes; no ceiling, or one per resource. */
export const limits: fc.Arbitrary<ProfileLimits> = fc.record({
  allowedRegistries: fc.subarray(REGISTRY_POOL, { maxLength: 2 }),
  maxResources: fc.record({ cpu: fc.constantFrom(...CPU_CEILINGS), memory: fc.constantFrom(...MEMORY_CEILINGS) }, { requiredKeys: [] }),
});
