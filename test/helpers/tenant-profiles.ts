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

/**
 * Quantities as a tenant may spell them (issue 30's write-time policy): suffixes, fractions, exponents (and
 * ParseQuantity's int32 truncation of them), the extremes where Kubernetes' parser hangs or panics, numbers,
 * and strings that are no quantity. Every one at most 64 characters (profile-policy.ts MAX_QUANTITY_LENGTH).
 */
export const ODD_QUANTITIES: readonly (string | number)[] = [
  '100m', '0.1', '.5', '5e-1', '1E-1', '500000u', '0.0005k', '1e3', '2', '1.', '0.000000001', '1e-10', '9m', '0.009', '500m', '499.9999999999m',
  '256Mi', '0.25Gi', '262144Ki', '268435456', '268435457', '2.68435456e8', '1e9', '1Gi', '9Ei', '8Ei', '1e400', '1E', '1P', '0.1000000001',
  '1e4294967297', '1e-2147483647', '1e-2147483648', '0.5e-2147483647', '1e2147483646', '10e2147483647', '1e-9223372036854775808', '1e9223372036854775807',
  '0e999999', '0.0e-99999999999', '1e9223372036854775808', '1e-101', '1e101', '1e100', '1e-100', '0000000000000000000001e-00000000000000000003',
  ' 100m', '100m ', '+1', '-1', '1e', 'abc', '', '1.5.5', '0x10', '１',
  0, 1, 2, 512, 268435456, -1,
];

const quantity = fc.oneof({ arbitrary: fc.constantFrom<string | number>('10m', '100m', '500m', '32Mi', '64Mi', '256Mi'), weight: 2 }, { arbitrary: fc.constantFrom(...ODD_QUANTITIES), weight: 3 });
const capped = fc.record({ cpu: fc.option(quantity, { nil: undefined, freq: 4 }), memory: fc.option(quantity, { nil: undefined, freq: 4 }) }).map(defined);
/** Requests and limits of cpu and memory, each unset, plain or oddly spelt. */
export const oddResources: fc.Arbitrary<object | undefined> = fc.option(
  fc.record({ limits: fc.option(capped, { nil: undefined, freq: 6 }), requests: fc.option(capped, { nil: undefined, freq: 3 }) }).map(defined),
  { nil: undefined, freq: 8 },
);

const writtenSecurityContext = fc
  .record({
    privileged: mostly<boolean | undefined>(undefined, true, false),
    allowPrivilegeEscalation: mostly<boolean | undefined>(false, true, undefined),
    runAsNonRoot: mostly<boolean | undefined>(true, false, undefined),
    runAsUser: mostly<number | undefined>(undefined, 0, 1000, 65532),
    capabilities: mostly<object | undefined>({ drop: ['ALL'] }, undefined, {}, { drop: [] }, { drop: ['NET_RAW'] }, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, { add: ['SYS_ADMIN', 'NET_ADMIN'] }, { drop: ['ALL'], add: [] }, { drop: ['NET_RAW', 'ALL'] }),
    seccompProfile: mostly<object | undefined>({ type: 'RuntimeDefault' }, { type: 'Localhost', localhostProfile: 'profiles/agent.json' }, { type: 'Unconfined' }, undefined),
    appArmorProfile: mostly<object | undefined>(undefined, { type: 'RuntimeDefault' }, { type: 'Unconfined' }, { type: 'Localhost', localhostProfile: 'agent' }),
    seLinuxOptions: mostly<object | undefined>(undefined, { type: 'container_t' }, { type: 'container_engine_t' }, { type: '' }, { type: 'spc_t', user: 'system_u', role: 'sysadm_r' }, { user: 'system_u' }, { role: '' }, { level: 's0:c1,c2' }),
    procMount: mostly<string | undefined>(undefined, 'Default', 'Unmasked'),
    windowsOptions: mostly<object | undefined>(undefined, { hostProcess: true }, { hostProcess: false }, { runAsUserName: 'agent' }),
    readOnlyRootFilesystem: fc.constantFrom(undefined, true),
  })
  .map(defined);

const writtenImage = mostly(
  'registry.example.com/team/agent:1.0',
  'registry.example.com/other/agent:1.0',
  'registry.example.com.evil.io/agent',
  'docker.io/library/busybox:1.36',
  'busybox',
  'registry.example.com:5000/team/agent',
  'registry.example.com/team/agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
  'registry.example.com',
  'registry.example.com/team',
  'docker.io/library/"quoted"\\image\ttab:1',
);
const writtenPort = fc.record({ containerPort: fc.constantFrom(8080, 9100), hostPort: mostly<number | undefined>(undefined, 8080, 0), hostIP: mostly<string | undefined>(undefined, '', '127.0.0.1', '0.0.0.0') }).map(defined);
const writtenProbe = mostly<object | undefined>(
  undefined,
  { httpGet: { port: 8080, path: '/ready' } },
  { httpGet: { port: 8080, host: '169.254.169.254' } },
  { httpGet: { port: 'http', host: '' } },
  { tcpSocket: { port: 8080, host: 'db.internal' } },
  { tcpSocket: { port: 8080, host: '' } },
  { exec: { command: ['true'] } },
  { grpc: { port: 9090 } },
);
const writtenLifecycle = mostly<object | undefined>(
  undefined,
  { preStop: { httpGet: { port: 8080, host: 'example.com' } } },
  { postStart: { tcpSocket: { port: 1, host: '10.0.0.1' } }, preStop: { httpGet: { port: 2, host: 'a.example' } } },
  { preStop: { sleep: { seconds: 5 } } },
  { postStart: { exec: { command: ['true'] } } },
);

const writtenContainer = fc
  .record({
    image: fc.option(writtenImage, { nil: undefined, freq: 12 }),
    ports: fc.array(writtenPort, { maxLength: 3 }),
    // No fractional numbers: the CRD's quantities are int-or-string (src/config/sidecar-profile-crd.ts).
    resources: fc.oneof(oddResources, mostly<object | undefined>({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } }, undefined, { limits: { cpu: '2' } }, { requests: { cpu: '600m' }, limits: { cpu: '1', memory: '1Gi' } }, { limits: { cpu: '9m', memory: '268435456' } }, { limits: { cpu: 1, memory: '256Mi' } })),
    securityContext: fc.option(writtenSecurityContext, { nil: undefined, freq: 12 }),
    livenessProbe: writtenProbe,
    readinessProbe: writtenProbe,
    startupProbe: writtenProbe,
    lifecycle: writtenLifecycle,
  })
  .map(defined);
const writtenContainers = (max: number, prefix: string) => fc.array(writtenContainer, { maxLength: max }).map((cs) => cs.map((c, i) => ({ name: `${prefix}-${i}`, ...c })));

const writtenVolumeSource = mostly<object>(
  { emptyDir: {} },
  { emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
  { configMap: { name: 'cm' } },
  { secret: { secretName: 's' } },
  { projected: { sources: [] } },
  { downwardAPI: { items: [] } },
  { hostPath: { path: '/var/run/docker.sock' } },
  { hostPath: { path: '/', type: 'Directory' } },
  { persistentVolumeClaim: { claimName: 'data' } },
  { nfs: { server: 'nfs.internal', path: '/' } },
  { csi: { driver: 'secrets-store.csi.k8s.io' } },
  { ephemeral: { volumeClaimTemplate: { spec: {} } } },
  { image: { reference: 'registry.example.com/data:1' } },
  { gitRepo: { repository: 'https://example.com/repo.git' } },
  { iscsi: { targetPortal: '10.0.0.1:3260', iqn: 'iqn.2001-04.com.example:storage', lun: 0 } },
);

/**
 * A SidecarProfile spec as a tenant writes it to the API (shapes the CRD accepts: test/e2e/profile-policy.e2e.ts), drawn
 * wider than `tenantProfile`: every field the rules read, host probes and hooks, startup probes, SELinux and
 * AppArmor variants, images at and around registry boundaries (a digest, a quote and a tab), resources unset,
 * within, above or oddly spelt (ODD_QUANTITIES), more volume kinds and override prefixes.
 */
export const writtenTenantProfile: fc.Arbitrary<Profile> = fc
  .record({
    nativeSidecar: fc.constantFrom<Profile['nativeSidecar']>(true, false, 'auto'),
    containers: writtenContainers(3, 'sidecar'),
    initContainers: writtenContainers(2, 'init'),
    volumes: fc.array(writtenVolumeSource, { maxLength: 4 }).map((sources) => sources.map((s, i) => ({ name: `v${i}`, ...s }))),
    imageRegistries: mostly<string[]>([], ['registry.example.com/team/'], ['registry.example.com/'], ['docker.io/'], ['registry.example.com'], ['registry.example.com/team/', 'quay.io/'], ['registry.example.com.evil.io/']),
    resourcesOverride: fc.boolean(),
  })
  .map(({ imageRegistries, resourcesOverride, ...p }) => ({ ...p, appVolumeMounts: [], overrides: { resources: resourcesOverride, imageRegistries } }) as unknown as Profile);

/** Limits as `limits`, and ceilings spelt as the config may spell them (numbers, exponents). */
export const writtenLimits: fc.Arbitrary<ProfileLimits> = fc.record({
  allowedRegistries: fc.subarray([...REGISTRY_POOL, 'quay.io/', 'registry.example.com:5000/'], { maxLength: 3 }),
  maxResources: fc.record({ cpu: fc.constantFrom(...CPU_CEILINGS, '1e0', '0.25', '2000m'), memory: fc.constantFrom(...MEMORY_CEILINGS, '2.68435456e8', '256e6', '1e9') }, { requiredKeys: [] }),
});
