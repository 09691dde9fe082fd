/**
 * Policy mode (SPEC 7): the config compiled into
 * MutatingAdmissionPolicies that the API server applies in-process, giving
 * the pods the webhook gives. Pure: config in, objects out, same bytes for
 * the same config.
 *
 * Two policies split like the chart's webhook, because matchConditions cannot
 * see the namespace: `<name>-namespaces`, bound to namespaces labelled
 * `<prefix>/injection=enabled` (every pod: rule 7), and `<name>`, bound to the
 * others with the webhook's matchConditions (a pod that does not ask is never
 * mutated, so it pays nothing). Both run one mutation: the rules of
 * decide.ts written in CEL (variables), a conflict check as the webhook's
 * final-pod check would find one, and a JSON patch that adds what inject.ts
 * adds. The API server itself adds what the webhook writes by hand (its
 * defaults, the service-account token mount, on its second pass).
 *
 * What the real API server taught (1.36.2, and issue 23's trial): map
 * literals must be homogeneous, so every value of a map is wrapped in dyn();
 * a JSON patch value that is a list of objects panics the server
 * (kubernetes#142181), so lists are created empty and filled item by item;
 * the policy runs again after the ServiceAccount plugin (reinvocation), so the
 * status annotation guards it as it guards the webhook.
 *
 * Per-pod overrides are variables that judge each annotation as overrides.ts
 * does (the image's registry at a path boundary, quantities by quantity.ts's
 * grammar and the Kubernetes quantity library, requests against the final
 * limits). What the webhook refuses or warns about is a
 * ValidatingAdmissionPolicy over the same variables. What this release does
 * not compile is refused with its config path, never dropped: resource
 * overrides where the profile does not set both requests and limits of cpu
 * and memory; and objects the API server would refuse at write (a CEL
 * expression over 100,000 characters or nested over 250: celLimitProblems).
 */
import type { V1Container, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { cel } from './cel-strings.js';
import type { CompiledConfig, Profile } from './config.js';
import type { KubeVersion } from './kube-version.js';
import { matchConditionsFor, selectorExpression, type MatchCondition } from './match-conditions.js';
import type { WebhookScope } from './scope.js';
import type { LabelSelector } from './selector.js';
import { coreV1Problems } from '../config/schema.js';

export interface PolicyObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/** The label on everything `policy` compiles, by which `audit` finds the bindings in policy mode. */
export const POLICY_SELECTOR = 'app.kubernetes.io/managed-by=sidecar-injector';

export type PolicyResult = { ok: true; objects: PolicyObject[] } | { ok: false; problems: string[] };

/** A CEL string literal (JSON's escapes are CEL's). */
const str = (s: string): string => JSON.stringify(s);

/** Any JSON value as a CEL literal whose maps are homogeneous: every map value wrapped in dyn(). */
export function celValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : `double(${str(String(v))})`;
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => `dyn(${celValue(x)})`).join(', ')}]`;
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  return `{${entries.map(([k, x]) => `${str(k)}: dyn(${celValue(x)})`).join(', ')}}`;
}

/** RFC 6901: `~` and `/` in a key. */
const pointer = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');

/** The CEL of `cases[p]` for the profile name in `variable`, as a chain of comparisons; `otherwise` when none. */
function byProfile(variable: string, cases: [string, string][], otherwise: string): string {
  return cases.reduceRight((rest, [name, expr]) => `(${variable} == ${str(name)} ? ${expr} : ${rest})`, otherwise);
}

/** What one profile adds, in inject.ts's order, as the API server receives it from us. */
interface ProfileParts {
  /** The profile's init containers, then its native sidecars. */
  initContainers: V1Container[];
  /** Regular sidecars (nativeSidecar: false). */
  containers: V1Container[];
  volumes: V1Volume[];
  appMounts: V1VolumeMount[];
}

function withoutRestartPolicy(c: V1Container): V1Container {
  const copy = { ...c };
  delete copy.restartPolicy;
  return copy;
}

/** 1.34+ always has native sidecars: `true` and `auto` are native. */
function partsOf(p: Profile): ProfileParts {
  const native = p.nativeSidecar !== false;
  const sidecars = p.containers.map(withoutRestartPolicy);
  return {
    initContainers: [...p.initContainers, ...(native ? sidecars.map((c) => ({ ...c, restartPolicy: 'Always' })) : [])],
    containers: native ? [] : sidecars,
    volumes: p.volumes,
    appMounts: p.appVolumeMounts,
  };
}

/**
 * Every object the policy would carry, against core/v1's field table (the config's own): the API server takes
 * a policy whose values have a field it does not know, then fails every pod the policy matches.
 */
function emittedFieldProblems(parts: Record<string, ProfileParts>): string[] {
  const out: string[] = [];
  for (const [name, p] of Object.entries(parts)) {
    const check = (list: string, items: readonly object[], type: string) =>
      items.forEach((x, i) => out.push(...coreV1Problems(x as Record<string, unknown>, type).map((problem) => `profiles.${name}: the policy's ${list}[${i}].${problem} (not compiled: the API server would fail every pod it matches)`)));
    check('initContainers', p.initContainers, 'V1Container');
    check('containers', p.containers, 'V1Container');
    check('volumes', p.volumes, 'V1Volume');
    check('appVolumeMounts', p.appMounts, 'V1VolumeMount');
  }
  return out;
}

/** What this release refuses, each with its config path and why. */
function refusals(compiled: CompiledConfig): string[] {
  const out: string[] = [];
  // SPEC 9 in policy mode (SidecarProfiles as the policy's parameters) is not built yet: refusing keeps
  // the promise that both modes store the same pods, rather than silently serving no tenant profile.
  if (compiled.config.tenantProfiles.enabled) {
    out.push('tenantProfiles.enabled: SidecarProfiles are served by the webhook only in this release (policy mode does not serve them yet; use the webhook, or set it to false)');
  }
  for (const [name, p] of Object.entries(compiled.config.profiles)) {
    if (!p.overrides.resources) continue;
    for (const [list, containers] of [['initContainers', p.initContainers], ['containers', p.containers]] as const) {
      containers.forEach((c, i) => {
        const r = c.resources;
        if (!RESOURCES.every((res) => r?.requests?.[res] !== undefined && r.limits?.[res] !== undefined)) {
          out.push(`profiles.${name}.${list}[${i}].resources: per-pod resource overrides compile only where the profile sets cpu and memory requests and limits (set them, or use the webhook)`);
        }
      });
    }
  }
  return out;
}

const RESOURCES = ['cpu', 'memory'] as const;
/** quantity.ts's grammar (no sign): what the webhook takes for a quantity; isQuantity() must hold as well. */
const QUANTITY_RE = '^(\\d+(?:\\.\\d*)?|\\.\\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\\d+)?$';
const IMAGE_RE = '^[A-Za-z0-9][A-Za-z0-9._\\-/:@]*$';

/** CEL expressions standing in for a container's overridable fields (overrides.ts, each judged on its own). */
interface OverrideExprs {
  image?: string;
  resources?: Record<(typeof RESOURCES)[number], { limit: string; request: string }>;
}

/** Variables that apply a profile's allowed overrides to each of its containers, and the expressions that read them. */
function overrideVariables(compiled: CompiledConfig): { variables: { name: string; expression: string }[]; byContainer: Map<string, OverrideExprs> } {
  const variables: { name: string; expression: string }[] = [];
  const byContainer = new Map<string, OverrideExprs>();
  const ann = (key: string) => `variables.annotations[${str(key)}]`;
  const present = (key: string) => `${str(key)} in variables.annotations`;
  let k = 0;
  for (const [profileName, p] of Object.entries(compiled.config.profiles)) {
    const registries = p.overrides.imageRegistries;
    if (registries.length === 0 && !p.overrides.resources) continue;
    for (const c of [...p.initContainers, ...p.containers]) {
      const key = (suffix: string) => `${compiled.keys.prefix}/${c.name}.${suffix}`;
      const id = `o${(k += 1)}`;
      const exprs: OverrideExprs = {};
      if (registries.length > 0) {
        // Read as overrides.ts reads it (cel-strings.ts).
        const v = cel.trim(ann(key('image')));
        // A registry prefix matches at a path boundary (overrides.ts imageAllowed).
        const allowed = `${JSON.stringify(registries)}.exists(r, ${v}.startsWith(r) && (r.endsWith("/") || r.endsWith(":") || size(${v}) == size(r) || ${v}.substring(size(r), size(r) + 1) in ["/", ":", "@"]))`;
        variables.push({ name: `${id}Image`, expression: `${present(key('image'))} && ${v}.matches(${str(IMAGE_RE)}) && ${cel.size(v)} <= 512 && ${allowed} ? ${v} : ${str(c.image ?? '')}` });
        exprs.image = `variables.${id}Image`;
      }
      if (p.overrides.resources) {
        const resources = {} as NonNullable<OverrideExprs['resources']>;
        for (const res of RESOURCES) {
          const profileLimit = str(String(c.resources?.limits?.[res]));
          const profileRequest = str(String(c.resources?.requests?.[res]));
          const quantity = (k2: string) => `${present(k2)} && ${ann(k2)}.matches(${str(QUANTITY_RE)}) && isQuantity(${ann(k2)})`;
          const [limit1, request, limit] = [`${id}${res}Limit1`, `${id}${res}Request`, `${id}${res}Limit`];
          variables.push(
            { name: limit1, expression: `${quantity(key(`${res}-limit`))} ? ${ann(key(`${res}-limit`))} : ${profileLimit}` },
            {
              name: request,
              expression: `${quantity(key(`${res}-request`))} && !quantity(${ann(key(`${res}-request`))}).isGreaterThan(quantity(variables.${limit1})) ? ${ann(key(`${res}-request`))} : ${profileRequest}`,
            },
            // A lowered limit that falls under the request yields to the profile's.
            { name: limit, expression: `variables.${limit1} != ${profileLimit} && quantity(variables.${request}).isGreaterThan(quantity(variables.${limit1})) ? ${profileLimit} : variables.${limit1}` },
          );
          resources[res] = { limit: `variables.${limit}`, request: `variables.${request}` };
        }
        exprs.resources = resources;
      }
      byContainer.set(`${profileName}\u0000${c.name}`, exprs);
    }
  }
  return { variables, byContainer };
}

/** A container as a CEL literal, its overridable fields read from the override variables. */
function containerCel(c: V1Container, exprs: OverrideExprs | undefined): string {
  if (!exprs) return celValue(c);
  const field = (k: string, v: unknown): string => {
    if (k === 'image' && exprs.image) return `${str(k)}: dyn(${exprs.image})`;
    const resources = exprs.resources;
    if (k === 'resources' && resources) {
      const r = v as Record<string, Record<string, unknown> | undefined>;
      const list = (which: 'limits' | 'requests', pick: 'limit' | 'request') => {
        const others = Object.entries(r[which] ?? {}).filter(([res]) => !(RESOURCES as readonly string[]).includes(res));
        const overridden = RESOURCES.map((res) => `${str(res)}: dyn(${resources[res][pick]})`);
        const entries = [...others.map(([res, q]) => `${str(res)}: dyn(${celValue(q)})`), ...overridden];
        return `${str(which)}: dyn({${entries.join(', ')}})`;
      };
      const rest = Object.entries(r).filter(([x]) => x !== 'limits' && x !== 'requests').map(([x, y]) => `${str(x)}: dyn(${celValue(y)})`);
      return `${str(k)}: dyn({${[list('limits', 'limit'), list('requests', 'request'), ...rest].join(', ')}})`;
    }
    return `${str(k)}: dyn(${celValue(v)})`;
  };
  return `{${Object.entries(c)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => field(k, v))
    .join(', ')}}`;
}

/** `version` for the API server: v1 from 1.36, v1beta1 on 1.34–1.35 (where the cluster turned it on), none before. */
export function policyApiVersion(v: KubeVersion): string | undefined {
  if (v.major > 1 || v.minor >= 36) return 'admissionregistration.k8s.io/v1';
  if (v.minor >= 34) return 'admissionregistration.k8s.io/v1beta1';
  return undefined;
}

/** The names of a profile list as readWish reads them (empty entries still in): split at commas, each trimmed. */
const WISH_NAMES = `${cel.split('variables.raw', ',')}.map(n, ${cel.trim('n')})`;

/** The decision of decide.ts, as CEL variables; `profiles` is the list to inject ([] for none). */
function decisionVariables(compiled: CompiledConfig): { name: string; expression: string }[] {
  const { config, keys } = compiled;
  const anyOf = (selectors: LabelSelector[]) => (selectors.length === 0 ? 'false' : selectors.map((s) => `(${selectorExpression(s)})`).join(' || '));
  const defaults = `[${config.defaultProfiles.map(str).join(', ')}]`;
  const known = `[${Object.keys(config.profiles).map(str).join(', ')}]`;
  const inject = str(keys.inject);
  return [
    { name: 'labels', expression: 'has(object.metadata.labels) ? object.metadata.labels : {}' },
    { name: 'annotations', expression: 'has(object.metadata.annotations) ? object.metadata.annotations : {}' },
    // readWish, with the same string functions (cel-strings.ts): the label wins when it is set, whatever its value.
    { name: 'hasWish', expression: `${inject} in variables.labels || ${inject} in variables.annotations` },
    { name: 'raw', expression: `${inject} in variables.labels ? ${cel.trim(`variables.labels[${inject}]`)} : (${inject} in variables.annotations ? ${cel.trim(`variables.annotations[${inject}]`)} : "")` },
    { name: 'wishTrue', expression: `variables.hasWish && ${cel.lowerAscii('variables.raw')} == "true"` },
    { name: 'wishFalse', expression: `variables.hasWish && ${cel.lowerAscii('variables.raw')} == "false"` },
    { name: 'listed', expression: `variables.hasWish && !variables.wishTrue && !variables.wishFalse ? ${WISH_NAMES}.filter(n, n != "" && n in ${known}) : []` },
    // Unknown names dropped, the first of each kept, in the pod's order.
    { name: 'asked', expression: 'lists.range(size(variables.listed)).filter(i, variables.listed.indexOf(variables.listed[i]) == i).map(i, variables.listed[i])' },
    {
      name: 'nsInjection',
      expression: `namespaceObject != null && has(namespaceObject.metadata.labels) && ${str(keys.namespaceInjection)} in namespaceObject.metadata.labels ? namespaceObject.metadata.labels[${str(keys.namespaceInjection)}] : ""`,
    },
    { name: 'never', expression: anyOf(config.neverInjectSelector) },
    {
      name: 'profiles',
      expression: [
        `request.namespace in [${[...compiled.excludedNamespaces].sort().map(str).join(', ')}] ? [] :`,
        `${str(keys.status)} in variables.annotations ? [] :`,
        'variables.never ? [] :',
        config.allowPodOptOut ? 'variables.wishFalse ? [] :' : '',
        `variables.wishTrue ? ${defaults} :`,
        'size(variables.asked) > 0 ? variables.asked :',
        `(${anyOf(config.alwaysInjectSelector)}) ? ${defaults} :`,
        `variables.nsInjection == "enabled" ? ${defaults} :`,
        `variables.nsInjection == "disabled" ? [] :`,
        config.policy === 'opt-out' ? defaults : '[]',
      ]
        .filter(Boolean)
        .join(' '),
    },
  ];
}

/** Names, ports and paths the selected profiles bring, and the collisions the webhook's final-pod check would find. */
function conflictVariables(parts: Record<string, ProfileParts>): { name: string; expression: string }[] {
  const entries = Object.entries(parts);
  const perProfile = (f: (p: ProfileParts) => string[]) =>
    `variables.profiles.map(p, ${byProfile('p', entries.map(([n, p]) => [n, `[${f(p).map(str).join(', ')}]`]), '[]')}).flatten()`;
  const portKey = (c: V1Container) => (c.ports ?? []).map((p) => `${p.containerPort}/${p.protocol ?? 'TCP'}`);
  const podPorts = (list: string, filter: string) =>
    `(has(object.spec.${list}) ? object.spec.${list}.filter(c, ${filter} && has(c.ports)).map(c, c.ports.map(p, string(p.containerPort) + "/" + (has(p.protocol) ? p.protocol : "TCP"))).flatten() : [])`;
  const podNames = (list: string) => `(has(object.spec.${list}) ? object.spec.${list}.map(c, c.name) : [])`;
  const dup = (v: string) => `${v}.exists(x, ${v}.indexOf(x) != ${v}.lastIndexOf(x))`;
  return [
    { name: 'injectedNames', expression: perProfile((p) => [...p.initContainers, ...p.containers].map((c) => c.name)) },
    { name: 'injectedInits', expression: perProfile((p) => p.initContainers.map((c) => c.name)) },
    // Containers and native sidecars share one port space; plain init containers run alone.
    { name: 'injectedPorts', expression: perProfile((p) => [...p.initContainers.filter((c) => c.restartPolicy === 'Always'), ...p.containers].flatMap(portKey)) },
    { name: 'injectedVolumes', expression: perProfile((p) => p.volumes.map((v) => v.name)) },
    { name: 'appMountPaths', expression: perProfile((p) => p.appMounts.map((m) => m.mountPath)) },
    // Volumes the profiles' containers mount that they do not bring: the pod must have them.
    { name: 'borrowedVolumes', expression: perProfile((p) => [...p.initContainers, ...p.containers].flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name)).filter((n) => !p.volumes.some((v) => v.name === n))) },
    {
      name: 'conflict',
      expression: [
        `variables.injectedNames.exists(n, n in ${podNames('containers')} + ${podNames('initContainers')} + ${podNames('ephemeralContainers')}) || ${dup('variables.injectedNames')}`,
        `variables.injectedPorts.exists(k, k in ${podPorts('containers', 'true')} + ${podPorts('initContainers', 'has(c.restartPolicy) && c.restartPolicy == "Always"')}) || ${dup('variables.injectedPorts')}`,
        `variables.injectedVolumes.exists(v, has(object.spec.volumes) && v in object.spec.volumes.map(x, x.name)) || ${dup('variables.injectedVolumes')}`,
        `variables.appMountPaths.exists(m, object.spec.containers.exists(c, has(c.volumeMounts) && c.volumeMounts.exists(x, x.mountPath == m))) || ${dup('variables.appMountPaths')}`,
        `variables.borrowedVolumes.exists(v, !(v in variables.injectedVolumes) && !(has(object.spec.volumes) && v in object.spec.volumes.map(x, x.name)))`,
      ].join(' || '),
    },
  ];
}

/** The status annotation, byte for byte as inject.ts writes it (JSON.stringify of profiles, containers, initContainers, volumes, revision). */
function statusExpression(parts: Record<string, ProfileParts>, revision: string): string {
  const entries = Object.entries(parts);
  const quoted = (names: string[]) => names.map((n) => JSON.stringify(n)).join(',');
  const list = (f: (p: ProfileParts) => string[]) =>
    `variables.profiles.map(p, ${byProfile('p', entries.map(([n, p]) => [n, str(quoted(f(p)))]), '""')}).filter(s, s != "").join(",")`;
  return [
    `'{"profiles":[' + variables.profiles.map(p, ${byProfile('p', entries.map(([n]) => [n, str(JSON.stringify(n))]), '""')}).join(",")`,
    `'],"containers":[' + ${list((p) => p.containers.map((c) => c.name))}`,
    `'],"initContainers":[' + ${list((p) => p.initContainers.map((c) => c.name))}`,
    `'],"volumes":[' + ${list((p) => p.volumes.map((v) => v.name))}`,
    `'],"revision":' + ${str(JSON.stringify(revision))} + '}'`,
  ].join(' + ');
}

const op = (path: string, value: string) => `JSONPatch{op: "add", path: ${path}, value: ${value}}`;

/** The JSON patch: status annotation, init containers first (inserted at 0 in reverse), sidecars, volumes, app mounts. */
function patchExpression(compiled: CompiledConfig, parts: Record<string, ProfileParts>, overrides: Map<string, OverrideExprs>): string {
  const entries = Object.entries(parts);
  const ops = (f: (p: ProfileParts, profile: string) => string[], variable = 'p') => byProfile(variable, entries.map(([n, p]) => [n, `[${f(p, n).join(', ')}]`]), '[]');
  const container = (c: V1Container, profile: string) => containerCel(c, overrides.get(`${profile}\u0000${c.name}`));
  const statusPath = str(`/metadata/annotations/${pointer(compiled.keys.status)}`);
  const appMounts = entries.flatMap(([, p]) => p.appMounts).length > 0;
  const steps = [
    `(has(object.metadata.annotations) ? [] : [${op('"/metadata/annotations"', '{}')}])`,
    `[${op(statusPath, statusExpression(parts, compiled.revision))}]`,
    // Lists are created empty, then filled one object at a time (a list of objects as a value: kubernetes#142181).
    `(size(variables.injectedInits) == 0 || has(object.spec.initContainers) ? [] : [${op('"/spec/initContainers"', '[]')}])`,
    `lists.range(size(variables.profiles)).map(k, variables.profiles[size(variables.profiles) - 1 - k]).map(p, ${ops((p, n) => [...p.initContainers].reverse().map((c) => op('"/spec/initContainers/0"', container(c, n))))}).flatten()`,
    `variables.profiles.map(p, ${ops((p, n) => p.containers.map((c) => op('"/spec/containers/-"', container(c, n))))}).flatten()`,
    `(size(variables.injectedVolumes) == 0 || has(object.spec.volumes) ? [] : [${op('"/spec/volumes"', '[]')}])`,
    `variables.profiles.map(p, ${ops((p) => p.volumes.map((v) => op('"/spec/volumes/-"', celValue(v))))}).flatten()`,
  ];
  if (appMounts) {
    const mountOps = ops((p) => p.appMounts.map((m) => op('"/spec/containers/" + string(i) + "/volumeMounts/-"', celValue(m))));
    steps.push(
      `(size(variables.appMountPaths) == 0 ? [] : lists.range(size(object.spec.containers)).map(i, (has(object.spec.containers[i].volumeMounts) ? [] : [${op('"/spec/containers/" + string(i) + "/volumeMounts"', '[]')}]) + variables.profiles.map(p, ${mountOps}).flatten()).flatten())`,
    );
  }
  return `size(variables.profiles) == 0 || variables.conflict ? [] : ${steps.join(' + ')}`;
}

/** Every namespace but the excluded ones, and, with `operator`, those labelled `enabled` or the others (no operator: both). */
function namespaceSelector(compiled: CompiledConfig, operator?: 'In' | 'NotIn'): LabelSelector {
  return {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...compiled.excludedNamespaces].sort() },
      ...(operator ? [{ key: compiled.keys.namespaceInjection, operator, values: ['enabled'] }] : []),
    ],
  };
}

/** The policies and bindings for the config; refused when it uses what this release does not compile. */
export function compilePolicy(compiled: CompiledConfig, name: string, version: KubeVersion, options: { apiServerLimits?: boolean } = {}): PolicyResult {
  const apiVersion = policyApiVersion(version);
  if (!apiVersion) return { ok: false, problems: [`--kube-version ${version.major}.${version.minor}: MutatingAdmissionPolicy needs Kubernetes 1.34 or later (v1beta1 on 1.34–1.35, v1 from 1.36)`] };
  const parts = Object.fromEntries(Object.entries(compiled.config.profiles).map(([n, p]) => [n, partsOf(p)]));
  const refused = [...refusals(compiled), ...emittedFieldProblems(parts)];
  if (refused.length > 0) return { ok: false, problems: refused };

  const labels = { 'app.kubernetes.io/managed-by': 'sidecar-injector', 'sidecar-injector.io/revision': compiled.revision };
  const overrides = overrideVariables(compiled);
  const variables = [...decisionVariables(compiled), ...overrides.variables, ...conflictVariables(parts)];
  const mutation = { patchType: 'JSONPatch', jsonPatch: { expression: patchExpression(compiled, parts, overrides.byContainer) } };
  const objectSelector: LabelSelector | undefined = compiled.config.allowPodOptOut ? { matchExpressions: [{ key: compiled.keys.inject, operator: 'NotIn', values: ['false'] }] } : undefined;

  const policy = (policyName: string, conditions: MatchCondition[]): PolicyObject => ({
    apiVersion,
    kind: 'MutatingAdmissionPolicy',
    metadata: { name: policyName, labels },
    spec: {
      matchConstraints: POD_CREATE,
      ...(conditions.length > 0 ? { matchConditions: conditions } : {}),
      failurePolicy: 'Fail',
      reinvocationPolicy: 'IfNeeded',
      variables,
      mutations: [mutation],
    },
  });
  const binding = (policyName: string, operator: 'In' | 'NotIn'): PolicyObject => ({
    apiVersion,
    kind: 'MutatingAdmissionPolicyBinding',
    metadata: { name: policyName, labels },
    spec: { policyName, matchResources: { namespaceSelector: namespaceSelector(compiled, operator), ...(objectSelector ? { objectSelector } : {}) } },
  });
  // Reinvocation: the API server runs an IfNeeded policy again after any mutation in the chain
  // (k8s.io/apiserver pkg/admission/plugin/policy/mutating/dispatcher.go). A pod already injected
  // would only meet the status guard in the patch; a matchCondition keeps it out before any
  // variable is evaluated. Same decision: decide.ts leaves a pod with the status annotation alone.
  const notInjected: MatchCondition = {
    name: 'sidecar-injector-not-injected',
    expression: `!(has(object.metadata.annotations) && ${str(compiled.keys.status)} in object.metadata.annotations)`,
  };
  const namespaces = `${name}-namespaces`;
  const objects = [
    policy(namespaces, [notInjected]),
    binding(namespaces, 'In'),
    policy(name, [notInjected, ...matchConditionsFor(compiled)]),
    binding(name, 'NotIn'),
    ...validatingObjects(compiled, name, variables, labels, objectSelector),
  ];
  // `apiServerLimits: false` only for tests that show the API server's own refusal.
  const over = options.apiServerLimits === false ? [] : celLimitProblems(objects, Object.keys(compiled.config.profiles).length);
  return over.length > 0 ? { ok: false, problems: over } : { ok: true, objects };
}

/**
 * What the API server refuses at write in every expression it compiles (variables, matchConditions,
 * mutations, validations): k8s.io/apiserver v0.36.3 parses them with cel-go v0.26.0's parser at its
 * defaults (parser/parser.go NewParser: expressionSizeCodePointLimit 100_000, maxRecursionDepth 250),
 * seen on kube-apiserver 1.36.3 at 100 and 200 profiles (test/e2e/policy-scale.e2e.ts):
 * "expression code point size exceeds limit: size: 123989, limit 100000" and "expression recursion
 * limit exceeded: 250".
 */
export const CEL_EXPRESSION_CODE_POINTS = 100_000;
export const CEL_RECURSION_DEPTH = 250;

/**
 * The deepest nesting of CEL's `expr` grammar rule in `expression`, which cel-go's parser counts
 * (parser/parser.go recursionListener, one counter per rule): the expression itself, one more inside
 * each parenthesis, call or list/map/message literal, and one more in each ternary's else branch
 * (`expr: conditionalOr ('?' conditionalOr ':' expr)?`); an empty `[]`, `{}` or `f()` holds none.
 * byProfile's chain adds 2 per profile. Checked against that parser over test/helpers/scale-configs.ts.
 */
export function celExprDepth(expression: string): number {
  // Per open bracket: ternaries whose ':' is still to come, and those whose else branch we are in.
  const outer: { pending: number; active: number }[] = [];
  let frame = { pending: 0, active: 0 };
  let depth = 1;
  let max = 1;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression.charAt(i);
    if (ch === '"' || ch === "'") {
      // A string literal: skipped whole (triple-quoted or not; raw strings have no escapes).
      const raw = i > 0 && /[rR]/.test(expression.charAt(i - 1)) && !/[\w.]/.test(expression.charAt(i - 2));
      const quote = expression.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
      i += quote.length;
      while (i < expression.length && !expression.startsWith(quote, i)) i += !raw && expression[i] === '\\' ? 2 : 1;
      i += quote.length - 1;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') {
      // Empty (`[]`, `{}`, `f()`): no expr inside.
      const close = /^\s*[)\]}]/.exec(expression.slice(i + 1, i + 64));
      if (close) {
        i += close[0].length;
        continue;
      }
      outer.push(frame);
      frame = { pending: 0, active: 0 };
      depth += 1;
    } else if (ch === ')' || ch === ']' || ch === '}') {
      depth -= 1 + frame.active;
      frame = outer.pop() ?? { pending: 0, active: 0 };
    } else if (ch === ',') {
      depth -= frame.active;
      frame.active = 0;
      frame.pending = 0;
    } else if (ch === '?') frame.pending += 1;
    else if (ch === ':' && frame.pending > 0) {
      frame.pending -= 1;
      frame.active += 1;
      depth += 1;
    }
    max = Math.max(max, depth);
  }
  return max;
}

/** One line per limit the objects break (the worst expression named), with what to do; none when the API server would accept them. */
export function celLimitProblems(objects: readonly PolicyObject[], profiles: number): string[] {
  let longest = { where: '', size: 0 };
  let deepest = { where: '', depth: 0 };
  const visit = (v: unknown, where: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${where}[${i}]`));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expression' || k === 'messageExpression') && typeof x === 'string') {
          const size = [...x].length;
          const depth = celExprDepth(x);
          if (size > longest.size) longest = { where: `${where}.${k}`, size };
          if (depth > deepest.depth) deepest = { where: `${where}.${k}`, depth };
        } else visit(x, `${where}.${k}`);
      }
  };
  for (const o of objects) visit(o.spec, `${o.kind} ${o.metadata.name}: spec`);
  const todo = 'use fewer profiles in this config, or the webhook (injection.mode: webhook)';
  return [
    ...(longest.size > CEL_EXPRESSION_CODE_POINTS
      ? [`${profiles} profiles compile to a CEL expression of ${longest.size} characters (${longest.where}); the API server refuses one over ${CEL_EXPRESSION_CODE_POINTS} (cel-go's parser limit, which k8s.io/apiserver keeps): ${todo}`]
      : []),
    ...(deepest.depth > CEL_RECURSION_DEPTH
      ? [`${profiles} profiles compile to a CEL expression nested ${deepest.depth} deep (${deepest.where}); the API server refuses one over ${CEL_RECURSION_DEPTH} (cel-go's parser recursion limit, which k8s.io/apiserver keeps; each profile nests 2): ${todo}`]
      : []),
  ];
}

/** Every policy here is about pods being created. */
const POD_CREATE = { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] };

const CONFLICT = 'a container name, port, volume or mount path the sidecars bring is already in the pod';

/**
 * What the webhook refuses or warns about, as ValidatingAdmissionPolicies over the same variables: they see
 * the pod after the mutation, which a pod injected carries the status annotation of, so they judge only the
 * pods the mutation left alone. `NAME-deny` (onConflict: deny; Invalid, as a policy cannot answer 409) and
 * `NAME-warn` with `NAME-warn-namespaces` (the webhook's warnings), split by the namespace label like the
 * mutating policies and the chart's webhook, so that they warn exactly the pods the webhook is sent and a pod
 * that does not ask is not even looked at.
 */
function validatingObjects(compiled: CompiledConfig, name: string, variables: { name: string; expression: string }[], labels: Record<string, string>, objectSelector: LabelSelector | undefined): PolicyObject[] {
  const { config, keys } = compiled;
  const apiVersion = 'admissionregistration.k8s.io/v1';
  const vap = (policyName: string, validations: Record<string, string>[], conditions: MatchCondition[]): PolicyObject => ({
    apiVersion,
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: policyName, labels },
    spec: {
      matchConstraints: POD_CREATE,
      ...(conditions.length > 0 ? { matchConditions: conditions } : {}),
      failurePolicy: 'Fail',
      variables,
      validations,
    },
  });
  const binding = (policyName: string, action: 'Deny' | 'Warn', namespaces: LabelSelector): PolicyObject => ({
    apiVersion,
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: policyName, labels },
    spec: { policyName, validationActions: [action], matchResources: { namespaceSelector: namespaces, ...(objectSelector ? { objectSelector } : {}) } },
  });
  const injectable = `size(variables.profiles) > 0 && !(${str(keys.status)} in variables.annotations)`;
  const out: PolicyObject[] = [];
  if (config.onConflict === 'deny') {
    const deny = `${name}-deny`;
    out.push(vap(deny, [{ expression: `!(${injectable} && variables.conflict)`, message: `sidecar injection denied: ${CONFLICT} (onConflict: deny)`, reason: 'Invalid' }], []), binding(deny, 'Deny', namespaceSelector(compiled)));
  }
  const known = `[${Object.keys(config.profiles).map(str).join(', ')}]`;
  // Asked as readWish reads it: "true", or any name, known or not.
  const asked = `variables.wishTrue || (variables.hasWish && !variables.wishFalse && ${WISH_NAMES}.exists(n, n != ""))`;
  const warnings: Record<string, string>[] = [
    {
      // decide.ts reads the names only after neverInjectSelector.
      expression: `!(!variables.never && variables.hasWish && !variables.wishTrue && !variables.wishFalse && ${WISH_NAMES}.exists(n, n != "" && !(n in ${known})))`,
      message: 'unknown sidecar profile ignored',
    },
    {
      // A pod that asked and is not injected; any pod the rules would inject that a conflict keeps out.
      expression: `!(!(${str(keys.status)} in variables.annotations) && ((${asked}) && size(variables.profiles) == 0 || size(variables.profiles) > 0 && variables.conflict))`,
      message: `sidecar injection skipped: the rules or a conflict leave this pod without sidecars`,
    },
  ];
  if (!config.allowPodOptOut) warnings.push({ expression: '!(!variables.never && variables.wishFalse)', message: `${keys.inject}=false ignored: pods may not opt out here (allowPodOptOut: false)` });
  const warn = `${name}-warn`;
  const warnNamespaces = `${name}-warn-namespaces`;
  out.push(
    vap(warnNamespaces, warnings, []),
    binding(warnNamespaces, 'Warn', namespaceSelector(compiled, 'In')),
    vap(warn, warnings, matchConditionsFor(compiled)),
    binding(warn, 'Warn', namespaceSelector(compiled, 'NotIn')),
  );
  return out;
}

/**
 * Which pods the policies are applied to, as the audit's scope (core/scope.ts): each binding's
 * namespaceSelector and objectSelector, as the API server applies them (matchConditions are not: they
 * are derived from the rules, so a pod they keep out that the rules want shows as missed). Pure.
 */
export function policyScope(objects: readonly PolicyObject[]): WebhookScope[] {
  return objects
    .filter((o) => o.kind === 'MutatingAdmissionPolicyBinding')
    .map((o) => {
      const match = (o.spec as { matchResources?: { namespaceSelector?: LabelSelector; objectSelector?: LabelSelector } }).matchResources ?? {};
      return { name: o.metadata.name, namespaceSelector: match.namespaceSelector, objectSelector: match.objectSelector };
    });
}
