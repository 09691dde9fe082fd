/**
 * Builds the injected pod: SPEC section 6. Pure, and the input is never
 * modified: the result shares every part of the pod that injection does not
 * touch, so the diff (patch.ts) only walks what changed and a pod with
 * thousands of env vars costs no more than a small one.
 */
import type { V1Container, V1Pod, V1PodSpec, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { CompiledConfig, NativeSidecar, Profile } from './config.js';
import { withContainerDefaults, withVolumeDefaults } from './defaults.js';
import { applyOverrides, readOverrides } from './overrides.js';
import { tenantProfileKey, type TenantProfiles } from './tenant-profile.js';
import { warning } from './warning.js';

/** What the status annotation records (JSON, in this key order). */
export interface InjectionStatus {
  profiles: string[];
  containers: string[];
  initContainers: string[];
  volumes: string[];
  revision: string;
  /** Each tenant profile injected (`namespace/name`, SPEC 9) with the generation injected; absent when none was. */
  generations?: Record<string, number>;
}

export interface Injection {
  pod: V1Pod;
  status: InjectionStatus;
  warnings: string[];
}

/** What the API server the pod goes to can do; undefined: not known (no cluster, or it has not answered). */
export interface ServerFeatures {
  /** Init containers with `restartPolicy: Always` (Kubernetes 1.29+); older servers drop the field. */
  nativeSidecars: boolean | undefined;
  /** Webhook matchConditions (1.28+, GA in 1.30); only the matchConditions writer asks. */
  matchConditions?: boolean;
}

export const UNKNOWN_SERVER: ServerFeatures = { nativeSidecars: undefined, matchConditions: undefined };

/**
 * SPEC 4: `true` is the config's word and falls back only on a server known to
 * lack support (it would drop restartPolicy and leave an init container that
 * never ends); `auto` is native only where support is known.
 */
function injectsNative(setting: NativeSidecar, server: ServerFeatures): boolean {
  return setting === true ? server.nativeSidecars !== false : setting === 'auto' && server.nativeSidecars === true;
}

/**
 * The ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount/admission.go,
 * mountServiceAccountToken) mounts the first `kube-api-access-*` volume at this path,
 * readOnly, into every container and init container that has no mount there. It ran
 * before us; after our patch it runs again and would do it to our containers, which
 * makes the API server call us a second time (reinvocationPolicy: IfNeeded). So we
 * add that mount ourselves, exactly as it would.
 */
const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_VOLUME_PREFIX = 'kube-api-access-';

/** The plugin's mount, when the pod shows it ran (the volume, mounted at the path in an app container) and automount is not off. */
function serviceAccountTokenMount(spec: V1PodSpec | undefined): V1VolumeMount | undefined {
  if (!spec || spec.automountServiceAccountToken === false) return undefined;
  const volume = spec.volumes?.find((v) => v.name.startsWith(TOKEN_VOLUME_PREFIX));
  if (!volume) return undefined;
  const mounted = [...spec.containers, ...(spec.initContainers ?? [])].some((c) =>
    c.volumeMounts?.some((m) => m.mountPath === TOKEN_MOUNT_PATH && m.name === volume.name),
  );
  return mounted ? { name: volume.name, readOnly: true, mountPath: TOKEN_MOUNT_PATH } : undefined;
}

/** A profile container with a mount of its own at the path (to keep the token away) is left as it is, as the plugin leaves it. */
function withTokenMount(c: V1Container, mount: V1VolumeMount | undefined): V1Container {
  if (!mount || c.volumeMounts?.some((m) => m.mountPath === TOKEN_MOUNT_PATH)) return c;
  return { ...c, volumeMounts: [...(c.volumeMounts ?? []), mount] };
}

/** What the profiles add, gathered before it is put into the pod. */
interface Parts {
  sidecars: V1Container[];
  initContainers: V1Container[];
  volumes: V1Volume[];
  appMounts: V1VolumeMount[];
}

/** Pod + profiles → the injected pod: gather the parts, record them, put them in. */
export function inject(
  pod: V1Pod,
  profileNames: readonly string[],
  compiled: CompiledConfig,
  server: ServerFeatures,
  tenants?: TenantProfiles,
): Injection {
  const warnings: string[] = [];
  const chosen = profileNames.flatMap((name) => {
    const found = resolveProfile(name, compiled, tenants);
    return found ? [found] : []; // decide() only hands over known names
  });
  const parts = gatherParts(pod, chosen, compiled, server, warnings);
  const generations = Object.fromEntries(chosen.flatMap((c) => (c.generation === undefined ? [] : [[c.name, c.generation]])));
  const status: InjectionStatus = {
    profiles: [...profileNames],
    containers: parts.sidecars.map((c) => c.name),
    initContainers: parts.initContainers.map((c) => c.name),
    volumes: parts.volumes.map((v) => v.name),
    revision: compiled.revision,
    ...(Object.keys(generations).length > 0 ? { generations } : {}),
  };
  const mutated: V1Pod = {
    ...pod,
    metadata: { ...pod.metadata, annotations: { ...pod.metadata?.annotations, [compiled.keys.status]: JSON.stringify(status) } },
    spec: withParts(pod.spec ?? { containers: [] }, parts),
  };
  return { pod: mutated, status, warnings };
}

/** A profile to inject, under the name the status annotation records. */
interface ChosenProfile {
  name: string;
  profile: Profile;
  /** A tenant profile's generation. */
  generation?: number;
}

/** A config profile by its name, or a tenant profile by `namespace/name` (decide() judged it accepted). */
function resolveProfile(name: string, compiled: CompiledConfig, tenants: TenantProfiles | undefined): ChosenProfile | undefined {
  const own = compiled.config.profiles[name];
  if (own) return { name, profile: own };
  const slash = name.indexOf('/');
  const tenant = slash < 0 ? undefined : tenants?.get(name.slice(slash + 1));
  if (!tenant?.profile || tenantProfileKey(tenant.namespace, tenant.name) !== name) return undefined;
  return { name, profile: tenant.profile, generation: tenant.generation };
}

/** Each profile's containers (overrides, defaults, token mount; native or not), volumes and app mounts. */
function gatherParts(pod: V1Pod, chosen: readonly ChosenProfile[], compiled: CompiledConfig, server: ServerFeatures, warnings: string[]): Parts {
  const overrides = readOverrides(pod.metadata?.annotations, compiled.keys.prefix);
  const tokenMount = serviceAccountTokenMount(pod.spec);
  const parts: Parts = { sidecars: [], initContainers: [], volumes: [], appMounts: [] };
  const injectedNames = new Set<string>();
  for (const { name, profile } of chosen) {
    const prepare = (c: V1Container) => {
      injectedNames.add(c.name);
      return withTokenMount(withContainerDefaults(applyOverrides(c, overrides.get(c.name), profile, warnings)), tokenMount);
    };
    const native = injectsNative(profile.nativeSidecar, server);
    if (profile.nativeSidecar === true && !native && profile.containers.length > 0) {
      warnings.push(warning(`profile ${name}: API server lacks native sidecars; injected as regular containers`));
    }
    parts.initContainers.push(...profile.initContainers.map(prepare));
    for (const c of profile.containers) {
      const container = withoutRestartPolicy(prepare(c));
      if (native) parts.initContainers.push({ ...container, restartPolicy: 'Always' });
      else parts.sidecars.push(container);
    }
    parts.volumes.push(...profile.volumes.map(withVolumeDefaults));
    parts.appMounts.push(...profile.appVolumeMounts);
  }
  for (const container of overrides.keys()) {
    if (!injectedNames.has(container)) warnings.push(warning(`override for "${container}" ignored: no such injected container`));
  }
  return parts;
}

/** The spec with the parts in; untouched lists are shared, not copied. */
function withParts(spec: V1PodSpec, parts: Parts): V1PodSpec {
  const { sidecars, initContainers, volumes, appMounts } = parts;
  const appContainers =
    appMounts.length === 0 ? spec.containers : spec.containers.map((c) => ({ ...c, volumeMounts: [...(c.volumeMounts ?? []), ...appMounts] }));
  const newSpec = { ...spec, containers: sidecars.length === 0 ? appContainers : [...appContainers, ...sidecars] };
  // Injected init containers run first: a native sidecar must be up before the app's init containers use it.
  if (initContainers.length > 0) newSpec.initContainers = [...initContainers, ...(spec.initContainers ?? [])];
  if (volumes.length > 0) newSpec.volumes = [...(spec.volumes ?? []), ...volumes];
  return newSpec;
}

/** A profile may write `restartPolicy: Always` on a sidecar; the injector sets it only where it is native. */
function withoutRestartPolicy(c: V1Container): V1Container {
  if (c.restartPolicy === undefined) return c;
  const copy = { ...c };
  delete copy.restartPolicy;
  return copy;
}
