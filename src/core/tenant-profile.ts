/**
 * Tenant profiles (SPEC 9): whether a SidecarProfile's spec (exactly a
 * profile of section 4, as the config schema reads it) may be served, and
 * why not, field by field. The one judgment that write-time refusal, the
 * status condition, injection, policy mode and validate-config use or are
 * proven equal to. Pure: no I/O, nothing above core.
 *
 * Two sets of rules:
 * - the cluster's limits (`tenantProfiles` in the config): allowedRegistries
 *   and maxResources;
 * - the fixed floor, whatever the limits: SPEC 9's list and the restricted
 *   Pod Security Standard, each rule named after its check in
 *   k8s.io/pod-security-admission/policy (v0.36).
 *
 * The profile is judged alone, not inside a pod: a sidecar goes into pods
 * its author does not write, so it cannot lean on a pod-level
 * securityContext. Where the restricted standard accepts "the pod or the
 * container" (runAsNonRoot, seccompProfile), every container must say it
 * itself. Where a check relaxes for pods in a user namespace (runAsNonRoot,
 * runAsUser, procMount since 1.35), the profile gets no such relaxation.
 */
import { CEILING_RESOURCES, type CompiledConfig, type Profile, type TenantProfileLimits } from './config.js';
import { imageAllowed } from './image-registry.js';
import { compareQuantities } from './quantity.js';
import { selectorMatches } from './selector.js';

/** Every rule, and where it comes from. */
export const TENANT_RULES = {
  allowedRegistries: 'tenantProfiles.allowedRegistries (SPEC 9)',
  maxResources: 'tenantProfiles.maxResources (SPEC 9: limits must be set and within)',
  privileged: 'SPEC 9; Pod Security Standards check privileged (baseline)',
  addedCapabilities: 'SPEC 9: no added capabilities (stricter than check capabilities_restricted, which allows NET_BIND_SERVICE)',
  capabilities_restricted: 'Pod Security Standards check capabilities_restricted (restricted): drop ALL',
  allowPrivilegeEscalation: 'SPEC 9; Pod Security Standards check allowPrivilegeEscalation (restricted)',
  runAsNonRoot: 'Pod Security Standards check runAsNonRoot (restricted)',
  runAsUser: 'Pod Security Standards check runAsUser (restricted)',
  seccompProfile_restricted: 'Pod Security Standards check seccompProfile_restricted (restricted)',
  appArmorProfile: 'Pod Security Standards check appArmorProfile (baseline)',
  seLinuxOptions: 'Pod Security Standards check seLinuxOptions (baseline)',
  procMount_restricted: 'Pod Security Standards check procMount_restricted (restricted)',
  windowsHostProcess: 'Pod Security Standards check windowsHostProcess (baseline)',
  hostNamespaces: 'SPEC 9; Pod Security Standards check hostNamespaces (baseline)',
  hostPorts: 'SPEC 9; Pod Security Standards check hostPorts (baseline); hostIP too',
  hostProbesAndHostLifecycle: 'SPEC 9 (host access); Pod Security Standards check hostProbesAndHostLifecycle (baseline, 1.34+)',
  hostPathVolumes: 'SPEC 9; Pod Security Standards check hostPathVolumes (baseline)',
  volumeKinds: 'SPEC 9: emptyDir, configMap, secret, projected, downwardAPI (stricter than check restrictedVolumes)',
} as const;

export type TenantRule = keyof typeof TENANT_RULES;

export interface ProfileProblem {
  /** The field, from the SidecarProfile's root: `spec.containers[0].securityContext.privileged`. */
  path: string;
  rule: TenantRule;
  /** What the field holds; undefined (or null) when a field that must be set is missing. */
  value: unknown;
  /** What is wrong, without the path and the rule (see formatProblem). */
  message: string;
}

export interface ProfileJudgment {
  accepted: boolean;
  /** In the order of the spec's fields; empty when accepted. */
  problems: ProfileProblem[];
}

/** The limits the judgment uses (enabled and namespaceSelector decide where profiles are served, not what they may hold). */
export type ProfileLimits = Pick<TenantProfileLimits, 'allowedRegistries' | 'maxResources'>;

/** The volume sources SPEC 9 allows. */
export const TENANT_VOLUME_SOURCES = ['emptyDir', 'configMap', 'secret', 'projected', 'downwardAPI'] as const;
const SECCOMP_TYPES = ['RuntimeDefault', 'Localhost'];
const APPARMOR_TYPES = ['RuntimeDefault', 'Localhost'];
/** seLinuxOptions 1.31+ (container_engine_t added then); '' is unset. */
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;
const LIFECYCLE_HANDLERS = ['postStart', 'preStop'] as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
/** null is unset, as the API server reads it. */
const present = (v: unknown) => v !== undefined && v !== null;
const objectAt = (v: unknown): Obj => (isObj(v) ? v : {});
const listAt = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** A value as the message shows it: JSON, cut at 60 characters (whole code points). */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  const chars = Array.from(text);
  return chars.length > 60 ? `${chars.slice(0, 59).join('')}…` : text;
}

/** `spec.containers[0].image: image from a registry not allowed here (...) (rule allowedRegistries)` */
export function formatProblem(p: ProfileProblem): string {
  return `${p.path}: ${p.message} (rule ${p.rule})`;
}

type Refuse = (path: string, rule: TenantRule, value: unknown, message: string) => void;

/**
 * Whether a SidecarProfile's spec stays inside the limits and the fixed floor,
 * and every problem, field by field. The spec is expected to have passed the
 * config schema's profile checks (src/config/schema.ts validateProfileSpec);
 * what it does not hold (a missing list, a wrong type) is judged as unset.
 */
export function judgeProfile(profile: Profile, limits: ProfileLimits): ProfileJudgment {
  const problems: ProfileProblem[] = [];
  const refuse: Refuse = (path, rule, value, message) => problems.push({ path, rule, value, message });
  const spec = profile as unknown as Obj;

  // Pod-level fields: a profile has none (the schema refuses them); judged anyway, so nothing depends on the schema having run.
  for (const key of ['hostNetwork', 'hostPID', 'hostIPC']) {
    if (present(spec[key]) && spec[key] !== false) refuse(`spec.${key}`, 'hostNamespaces', spec[key], `must be false or unset, not ${shown(spec[key])}: tenant profiles never share the host's namespaces`);
  }
  for (const list of ['containers', 'initContainers'] as const) {
    listAt(spec[list]).forEach((c, i) => judgeContainer(objectAt(c), `spec.${list}[${i}]`, limits, refuse));
  }
  listAt(spec.volumes).forEach((v, i) => judgeVolume(objectAt(v), `spec.volumes[${i}]`, refuse));
  const registries = limits.allowedRegistries;
  if (registries.length > 0) {
    listAt(objectAt(spec.overrides).imageRegistries).forEach((prefix, j) => {
      // A prefix inside an allowed one admits only images the allowed one admits (both match at a path boundary).
      if (typeof prefix === 'string' && !imageAllowed(prefix, registries)) {
        refuse(`spec.overrides.imageRegistries[${j}]`, 'allowedRegistries', prefix, `image overrides from ${shown(prefix)} could leave the allowed registries (${registries.join(', ')})`);
      }
    });
  }
  return { accepted: problems.length === 0, problems };
}

function judgeContainer(c: Obj, at: string, limits: ProfileLimits, refuse: Refuse): void {
  const registries = limits.allowedRegistries;
  if (registries.length > 0 && typeof c.image === 'string' && !imageAllowed(c.image, registries)) {
    refuse(`${at}.image`, 'allowedRegistries', c.image, `image ${shown(c.image)} is not from an allowed registry (${registries.join(', ')})`);
  }
  judgeResources(objectAt(c.resources), `${at}.resources`, limits, refuse);

  const sc = objectAt(c.securityContext);
  const scAt = `${at}.securityContext`;
  if (present(sc.privileged) && sc.privileged !== false) refuse(`${scAt}.privileged`, 'privileged', sc.privileged, `must be false or unset, not ${shown(sc.privileged)}`);
  const caps = objectAt(sc.capabilities);
  if (present(caps.add) && !(Array.isArray(caps.add) && caps.add.length === 0)) {
    refuse(`${scAt}.capabilities.add`, 'addedCapabilities', caps.add, `must be empty, not ${shown(caps.add)}: tenant profiles add no capabilities`);
  }
  if (!(Array.isArray(caps.drop) && caps.drop.includes('ALL'))) {
    refuse(`${scAt}.capabilities.drop`, 'capabilities_restricted', caps.drop, present(caps.drop) ? `must include "ALL", not ${shown(caps.drop)}` : 'required: must include "ALL"');
  }
  mustBe(sc.allowPrivilegeEscalation, false, `${scAt}.allowPrivilegeEscalation`, 'allowPrivilegeEscalation', refuse);
  mustBe(sc.runAsNonRoot, true, `${scAt}.runAsNonRoot`, 'runAsNonRoot', refuse);
  if (sc.runAsUser === 0) refuse(`${scAt}.runAsUser`, 'runAsUser', 0, 'must not be 0 (root)');
  const seccomp = objectAt(sc.seccompProfile).type;
  if (!SECCOMP_TYPES.includes(seccomp as string)) {
    refuse(`${scAt}.seccompProfile.type`, 'seccompProfile_restricted', seccomp, present(seccomp) ? `must be RuntimeDefault or Localhost, not ${shown(seccomp)}` : 'required: must be RuntimeDefault or Localhost');
  }
  if (present(sc.appArmorProfile)) {
    const type = objectAt(sc.appArmorProfile).type;
    if (!APPARMOR_TYPES.includes(type as string)) refuse(`${scAt}.appArmorProfile.type`, 'appArmorProfile', type, `must be RuntimeDefault or Localhost, not ${shown(type)}`);
  }
  if (present(sc.seLinuxOptions)) {
    const se = objectAt(sc.seLinuxOptions);
    if (present(se.type) && !SELINUX_TYPES.includes(se.type as string)) {
      refuse(`${scAt}.seLinuxOptions.type`, 'seLinuxOptions', se.type, `must be ${SELINUX_TYPES.slice(1).join(', ')} or empty, not ${shown(se.type)}`);
    }
    for (const key of ['user', 'role']) {
      if (present(se[key]) && se[key] !== '') refuse(`${scAt}.seLinuxOptions.${key}`, 'seLinuxOptions', se[key], `must be empty, not ${shown(se[key])}`);
    }
  }
  if (present(sc.procMount) && sc.procMount !== 'Default') refuse(`${scAt}.procMount`, 'procMount_restricted', sc.procMount, `must be Default or unset, not ${shown(sc.procMount)}`);
  const hostProcess = objectAt(sc.windowsOptions).hostProcess;
  if (present(hostProcess) && hostProcess !== false) refuse(`${scAt}.windowsOptions.hostProcess`, 'windowsHostProcess', hostProcess, `must be false or unset, not ${shown(hostProcess)}`);

  listAt(c.ports).forEach((p, j) => {
    const port = objectAt(p);
    if (present(port.hostPort) && port.hostPort !== 0) refuse(`${at}.ports[${j}].hostPort`, 'hostPorts', port.hostPort, `must be 0 or unset, not ${shown(port.hostPort)}: tenant profiles use no host ports`);
    if (present(port.hostIP) && port.hostIP !== '') refuse(`${at}.ports[${j}].hostIP`, 'hostPorts', port.hostIP, `must be empty, not ${shown(port.hostIP)}: tenant profiles use no host ports`);
  });
  const handlers: [string, Obj][] = [
    ...PROBES.map((p): [string, Obj] => [`${at}.${p}`, objectAt(c[p])]),
    ...LIFECYCLE_HANDLERS.map((h): [string, Obj] => [`${at}.lifecycle.${h}`, objectAt(objectAt(c.lifecycle)[h])]),
  ];
  for (const [handlerAt, handler] of handlers) {
    for (const action of ['httpGet', 'tcpSocket']) {
      const host = objectAt(handler[action]).host;
      if (present(host) && host !== '') refuse(`${handlerAt}.${action}.host`, 'hostProbesAndHostLifecycle', host, `must be empty, not ${shown(host)}: probes and hooks reach the pod, not another host`);
    }
  }
}

/** `maxResources`: for each capped resource the limit must be set and within, and a request within. */
function judgeResources(resources: Obj, at: string, limits: ProfileLimits, refuse: Refuse): void {
  for (const resource of CEILING_RESOURCES) {
    const ceiling = limits.maxResources[resource];
    if (ceiling === undefined) continue;
    const limit = objectAt(resources.limits)[resource];
    const request = objectAt(resources.requests)[resource];
    if (!present(limit)) refuse(`${at}.limits.${resource}`, 'maxResources', limit, `required: a ${resource} limit of at most ${ceiling}`);
    else withinCeiling(limit, ceiling, `${at}.limits.${resource}`, refuse);
    if (present(request)) withinCeiling(request, ceiling, `${at}.requests.${resource}`, refuse);
  }
}

function withinCeiling(value: unknown, ceiling: string, at: string, refuse: Refuse): void {
  // At most 64 characters: the write-time policy does not hand longer ones to Kubernetes' parser (profile-policy.ts MAX_QUANTITY_LENGTH).
  const text = typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  const order = text !== undefined && Array.from(text).length <= 64 ? compareQuantities(text, ceiling) : undefined;
  if (order === undefined) refuse(at, 'maxResources', value, `must be a quantity of at most ${ceiling}, not ${shown(value)}`);
  else if (order > 0) refuse(at, 'maxResources', value, `${String(value)} is above the ceiling ${ceiling}`);
}

/** A field the floor requires set to one value (unset is refused too). */
function mustBe(value: unknown, required: boolean, at: string, rule: TenantRule, refuse: Refuse): void {
  if (value === required) return;
  refuse(at, rule, value, present(value) ? `must be ${required}, not ${shown(value)}` : `required: must be ${required}`);
}

function judgeVolume(v: Obj, at: string, refuse: Refuse): void {
  for (const [source, value] of Object.entries(v)) {
    if (source === 'name' || !present(value)) continue;
    if (source === 'hostPath') refuse(`${at}.hostPath`, 'hostPathVolumes', value, 'hostPath volumes are not allowed in tenant profiles');
    else if (!(TENANT_VOLUME_SOURCES as readonly string[]).includes(source)) {
      refuse(`${at}.${source}`, 'volumeKinds', value, `${source} volumes are not allowed in tenant profiles (allowed: ${TENANT_VOLUME_SOURCES.join(', ')})`);
    }
  }
}

/** Why a SidecarProfile is or is not served: the `Accepted` condition's reason. */
export type TenantReason = 'Accepted' | 'NotServed' | 'Shadowed' | 'Invalid' | 'OutsideLimits';

export interface TenantVerdict {
  accepted: boolean;
  reason: TenantReason;
  /** For people: the problems joined, or why it is (not) served. */
  message: string;
  /** Invalid and OutsideLimits: each problem with its field (and rule); else empty. */
  problems: readonly string[];
}

/** A SidecarProfile as the injector holds it: read once from the API (or a file), judged when used. */
export interface TenantProfile {
  namespace: string;
  name: string;
  /** metadata.generation: recorded in the status annotation, so audit sees a changed profile. */
  generation: number;
  /** The spec read as a config profile; undefined when it is not one (then specProblems says why). */
  profile: Profile | undefined;
  /** The config schema's problems with the spec, each `spec.<path>: message`. */
  specProblems: readonly string[];
}

/** The SidecarProfiles of one namespace, by name. */
export type TenantProfiles = ReadonlyMap<string, TenantProfile>;
/** Where a namespace's SidecarProfiles come from: an index the edge keeps (never a network call on the admission path). */
export type TenantProfileLookup = (namespace: string) => TenantProfiles | undefined;

/** How the status annotation and warnings name a tenant profile (SPEC 9: `namespace/name`). */
export function tenantProfileKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * Whether a SidecarProfile is served, judged against the config in force and
 * its namespace's labels, first reason wins: tenant profiles off or the
 * namespace not selected (NotServed), a config profile of the same name
 * (Shadowed: the pod's wish means the config's), a spec that is not a profile
 * (Invalid), a spec outside the limits or the floor (OutsideLimits). The
 * webhook judges at each use and the status writer with the same function,
 * so a reload that tightens the limits binds the next admission at once.
 */
export function tenantVerdict(
  t: TenantProfile,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  compiled: CompiledConfig,
): TenantVerdict {
  const { config } = compiled;
  const limits = config.tenantProfiles;
  const refused = (reason: TenantReason, message: string, problems: readonly string[] = []): TenantVerdict => ({ accepted: false, reason, message, problems });
  if (!limits.enabled) return refused('NotServed', 'tenant profiles are not enabled (tenantProfiles.enabled is false)');
  if (compiled.excludedNamespaces.has(t.namespace)) return refused('NotServed', `namespace ${t.namespace} is excluded (excludeNamespaces)`);
  if (!selectorMatches(limits.namespaceSelector, namespaceLabels ?? {})) {
    return refused('NotServed', `namespace ${t.namespace} is not selected by tenantProfiles.namespaceSelector`);
  }
  if (Object.hasOwn(config.profiles, t.name)) {
    return refused('Shadowed', `the config has a profile named "${t.name}": pods that ask for "${t.name}" get the config's`);
  }
  if (t.profile === undefined || t.specProblems.length > 0) {
    const problems = t.specProblems.length > 0 ? t.specProblems : ['spec: not a profile'];
    return refused('Invalid', problems.join('; '), problems);
  }
  const judgment = judgeProfile(t.profile, limits);
  if (!judgment.accepted) {
    const problems = judgment.problems.map(formatProblem);
    return refused('OutsideLimits', problems.join('; '), problems);
  }
  return { accepted: true, reason: 'Accepted', message: 'inside the limits; served to pods of its namespace that ask for it by name', problems: [] };
}
