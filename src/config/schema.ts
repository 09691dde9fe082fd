/**
 * The config file's schema. Validation returns every problem with its path
 * (`profiles.log-shipper.containers[0].image: required`), never throws.
 * Containers, volumes and mounts are checked field by field, nested objects
 * included, against the core/v1 table generated from the Kubernetes OpenAPI
 * models (core-v1-schema.ts): a typo fails here, naming the nearest field,
 * rather than being dropped by the API server (`readonly: true` would mount
 * read-write). They are then injected exactly as written.
 *
 * Written by hand rather than with a schema library: the one we used (zod)
 * added 7.5 MB to the resident size of every replica for a job done once per
 * config load (see README, Performance).
 */
import type { V1Container, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { CEILING_RESOURCES, type InjectorConfig, type NativeSidecar, type Profile, type TenantProfileLimits } from '../core/config.js';
import type { LabelSelector } from '../core/selector.js';
import { IMAGE_REFERENCE } from '../core/image-registry.js';
import { compareQuantities, isQuantity } from '../core/quantity.js';
import { CORE_V1_TYPES } from './core-v1-schema.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Profile names travel in a label value and in comma lists.
const PROFILE_NAME = /^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$/;

type Path = (string | number)[];
type Obj = Record<string, unknown>;

interface Problem {
  path: Path;
  message: string;
}

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const typeName = (v: unknown) => (Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`);

/** Collects problems while reading a parsed document field by field. */
class Reader {
  readonly problems: Problem[] = [];

  /** One problem per path: the typed check and a field's own rule may both see a wrong shape. */
  fail(path: Path, message: string): undefined {
    const key = formatPath(path);
    if (!this.problems.some((p) => formatPath(p.path) === key)) this.problems.push({ path, message });
    return undefined;
  }

  /** An object whose keys are all in `allowed`; undefined (and a problem) otherwise. */
  object(v: unknown, path: Path, allowed: readonly string[] | undefined, required = false): Obj | undefined {
    if (v === undefined) return required ? this.fail(path, 'required') : undefined;
    if (!isObj(v)) return this.fail(path, `must be a mapping, not ${typeName(v)}`);
    if (allowed) for (const key of Object.keys(v)) if (!allowed.includes(key)) this.fail([...path, key], unknownField(key, allowed));
    return v;
  }

  string(v: unknown, path: Path, rule?: { pattern: RegExp; message: string; max?: number }, required = false): string | undefined {
    if (v === undefined) return required ? this.fail(path, 'required') : undefined;
    if (typeof v !== 'string') return this.fail(path, 'must be a string');
    if (rule?.max !== undefined && v.length > rule.max) return this.fail(path, `must be at most ${rule.max} characters`);
    if (rule && !rule.pattern.test(v)) return this.fail(path, rule.message);
    return v;
  }

  nonEmpty(v: unknown, path: Path, required = false): string | undefined {
    const s = this.string(v, path, undefined, required);
    if (s === '') return this.fail(path, 'must not be empty');
    return s;
  }

  boolean(v: unknown, path: Path, fallback: boolean): boolean {
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') return this.fail(path, 'must be a boolean') ?? fallback;
    return v;
  }

  oneOf<T extends string>(v: unknown, path: Path, values: readonly T[], fallback: T): T {
    if (v === undefined) return fallback;
    if (!values.includes(v as T)) return this.fail(path, `must be one of: ${values.join(', ')}`) ?? fallback;
    return v as T;
  }

  list<T>(v: unknown, path: Path, item: (x: unknown, at: Path) => T | undefined): T[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) return this.fail(path, `must be a list, not ${typeName(v)}`) ?? [];
    const out: T[] = [];
    v.forEach((x, i) => {
      const value = item(x, [...path, i]);
      if (value !== undefined) out.push(value);
    });
    return out;
  }

  stringMap(v: unknown, path: Path): Record<string, string> | undefined {
    const obj = this.object(v, path, undefined);
    if (obj) for (const [k, x] of Object.entries(obj)) this.string(x, [...path, k]);
    return obj as Record<string, string> | undefined;
  }

  quantities(v: unknown, path: Path): void {
    const obj = this.object(v, path, undefined);
    for (const [k, q] of Object.entries(obj ?? {})) {
      if ((typeof q !== 'string' && typeof q !== 'number') || !isQuantity(String(q))) {
        this.fail([...path, k], 'must be a Kubernetes quantity such as 100m, 64Mi or 1');
      }
    }
  }
}

function unknownField(key: string, fields: readonly string[]): string {
  const near = nearestField(key, fields);
  return near ? `unknown field (did you mean ${near}?)` : 'unknown field';
}

/** The nearest known field to a typo: the same letters in another case, else the closest within two edits. */
export function nearestField(key: string, fields: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(key.length / 3)) + 1;
  for (const f of fields) {
    const d = editDistance(lower, f.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [f, d];
  }
  return best;
}

/** Edits between two words, a swap of neighbours counting as one (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const w = b.length + 1;
  const d = new Uint32Array((a.length + 1) * w);
  for (let i = 0; i <= a.length; i++) d[i * w] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((d[(i - 1) * w + j] ?? 0) + 1, (d[i * w + j - 1] ?? 0) + 1, (d[(i - 1) * w + j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (d[(i - 2) * w + j - 2] ?? 0) + 1);
      d[i * w + j] = best;
    }
  }
  return d[a.length * w + b.length] ?? 0;
}

const SCALARS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  boolean: (v) => typeof v === 'boolean',
  number: (v) => typeof v === 'number',
  IntOrString: (v) => typeof v === 'string' || typeof v === 'number',
  // Quantities and labels: values are judged where they are used (quantities()).
  map: isObj,
  any: () => true,
};

/** Every field of a core/v1 object, nested ones included: known, and of the right shape. */
function checkCoreV1(r: Reader, v: Readonly<Obj>, type: string, at: Path): void {
  const fields = CORE_V1_TYPES[type] ?? {};
  for (const [key, value] of Object.entries(v)) {
    const shape = fields[key];
    if (shape === undefined) {
      r.fail([...at, key], unknownField(key, Object.keys(fields)));
    } else if (value !== null) checkShape(r, value, shape, [...at, key]);
  }
}

/** A core/v1 object of `type` (`V1Container`, `V1Volume`, ...) checked field by field: `path: problem` lines, [] when sound. Pure. */
export function coreV1Problems(value: Readonly<Record<string, unknown>>, type: string): string[] {
  const r = new Reader();
  checkCoreV1(r, value, type, []);
  return r.problems.map((p) => `${formatPath(p.path)}: ${p.message}`);
}

function checkShape(r: Reader, value: unknown, shape: string, at: Path): void {
  if (shape.startsWith('[]')) {
    if (!Array.isArray(value)) r.fail(at, `must be a list, not ${typeName(value)}`);
    else value.forEach((x, i) => checkShape(r, x, shape.slice(2), [...at, i]));
    return;
  }
  const scalar = SCALARS[shape];
  if (scalar) {
    if (!scalar(value)) r.fail(at, shape === 'map' ? `must be a mapping, not ${typeName(value)}` : `must be ${shape === 'IntOrString' ? 'a number or a string' : `a ${shape}`}, not ${typeName(value)}`);
    return;
  }
  if (!isObj(value)) r.fail(at, `must be a mapping, not ${typeName(value)}`);
  else checkCoreV1(r, value, shape, at);
}

const dnsLabel = { pattern: DNS_LABEL, message: 'must be a DNS label (lower case letters, digits and -)', max: 63 };

function readVolumeMount(r: Reader, v: unknown, at: Path): V1VolumeMount | undefined {
  const m = r.object(v, at, undefined, true);
  if (!m) return undefined;
  checkCoreV1(r, m, 'V1VolumeMount', at);
  r.string(m.name, [...at, 'name'], undefined, true);
  r.nonEmpty(m.mountPath, [...at, 'mountPath'], true);
  return m as unknown as V1VolumeMount;
}

function readContainer(r: Reader, v: unknown, at: Path): V1Container | undefined {
  const c = r.object(v, at, undefined, true);
  if (!c) return undefined;
  checkCoreV1(r, c, 'V1Container', at);
  r.string(c.name, [...at, 'name'], dnsLabel, true);
  r.nonEmpty(c.image, [...at, 'image'], true);
  r.list(c.ports, [...at, 'ports'], (x, p) => {
    const port = r.object(x, p, undefined, true);
    if (!port) return undefined;
    const n = port.containerPort;
    if (n === undefined) r.fail([...p, 'containerPort'], 'required');
    else if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 65535) r.fail([...p, 'containerPort'], 'must be a port number (1-65535)');
    r.oneOf(port.protocol, [...p, 'protocol'], ['TCP', 'UDP', 'SCTP'], 'TCP');
    return port;
  });
  r.list(c.volumeMounts, [...at, 'volumeMounts'], (x, p) => readVolumeMount(r, x, p));
  const resources = r.object(c.resources, [...at, 'resources'], undefined);
  if (resources) {
    r.quantities(resources.requests, [...at, 'resources', 'requests']);
    r.quantities(resources.limits, [...at, 'resources', 'limits']);
  }
  r.string(c.restartPolicy, [...at, 'restartPolicy']);
  return c as unknown as V1Container;
}

function readVolume(r: Reader, v: unknown, at: Path): V1Volume | undefined {
  const vol = r.object(v, at, undefined, true);
  if (!vol) return undefined;
  checkCoreV1(r, vol, 'V1Volume', at);
  r.string(vol.name, [...at, 'name'], dnsLabel, true);
  return vol as unknown as V1Volume;
}

function readSelector(r: Reader, v: unknown, at: Path): LabelSelector | undefined {
  const s = r.object(v, at, ['matchLabels', 'matchExpressions'], true);
  if (!s) return undefined;
  r.stringMap(s.matchLabels, [...at, 'matchLabels']);
  r.list(s.matchExpressions, [...at, 'matchExpressions'], (x, p) => {
    const e = r.object(x, p, ['key', 'operator', 'values'], true);
    if (!e) return undefined;
    r.nonEmpty(e.key, [...p, 'key'], true);
    if (e.operator === undefined) r.fail([...p, 'operator'], 'required');
    else r.oneOf(e.operator, [...p, 'operator'], ['In', 'NotIn', 'Exists', 'DoesNotExist'], 'In');
    r.list(e.values, [...p, 'values'], (y, q) => r.string(y, q));
    return e;
  });
  return s as LabelSelector;
}

function readNativeSidecar(r: Reader, v: unknown, at: Path): NativeSidecar {
  if (v === undefined) return false;
  if (v === true || v === false || v === 'auto') return v;
  return r.fail(at, 'must be true, false or auto') ?? false;
}

const PROFILE_FIELDS = ['nativeSidecar', 'containers', 'initContainers', 'volumes', 'appVolumeMounts', 'overrides'];

function readProfile(r: Reader, v: unknown, at: Path): Profile | undefined {
  const p = r.object(v ?? {}, at, PROFILE_FIELDS);
  if (!p) return undefined;
  const overrides = r.object(p.overrides, [...at, 'overrides'], ['resources', 'imageRegistries']) ?? {};
  return {
    nativeSidecar: readNativeSidecar(r, p.nativeSidecar, [...at, 'nativeSidecar']),
    containers: r.list(p.containers, [...at, 'containers'], (x, q) => readContainer(r, x, q)),
    initContainers: r.list(p.initContainers, [...at, 'initContainers'], (x, q) => readContainer(r, x, q)),
    volumes: r.list(p.volumes, [...at, 'volumes'], (x, q) => readVolume(r, x, q)),
    appVolumeMounts: r.list(p.appVolumeMounts, [...at, 'appVolumeMounts'], (x, q) => readVolumeMount(r, x, q)),
    overrides: {
      resources: r.boolean(overrides.resources, [...at, 'overrides', 'resources'], false),
      imageRegistries: r.list(overrides.imageRegistries, [...at, 'overrides', 'imageRegistries'], (x, q) => r.nonEmpty(x, q)),
    },
  };
}

// An image reference's first characters (IMAGE_REFERENCE's): no spaces, and no scheme.
const REGISTRY_PREFIX = { pattern: new RegExp(`^(?!.*://)${IMAGE_REFERENCE.source.slice(1)}`), message: 'must be an image reference prefix such as registry.example.com/team/ (no scheme)' };

const TENANT_FIELDS = ['enabled', 'namespaceSelector', 'allowedRegistries', 'maxResources'];

/** `tenantProfiles` (SPEC 9): absent or null is off, with no limits beyond the fixed floor. */
function readTenantProfiles(r: Reader, v: unknown, at: Path): TenantProfileLimits {
  const t = r.object(v ?? {}, at, TENANT_FIELDS) ?? {};
  const maxResources: TenantProfileLimits['maxResources'] = {};
  const ceilings = r.object(t.maxResources ?? {}, [...at, 'maxResources'], CEILING_RESOURCES) ?? {};
  for (const resource of CEILING_RESOURCES) {
    const q = ceilings[resource];
    if (q === undefined || q === null) continue;
    if ((typeof q !== 'string' && typeof q !== 'number') || !isQuantity(String(q))) {
      r.fail([...at, 'maxResources', resource], 'must be a Kubernetes quantity such as 500m or 256Mi');
    } else if (compareQuantities(String(q), '0') !== 1) r.fail([...at, 'maxResources', resource], 'must be more than 0');
    else maxResources[resource] = String(q);
  }
  return {
    enabled: r.boolean(t.enabled, [...at, 'enabled'], false),
    namespaceSelector: t.namespaceSelector === undefined || t.namespaceSelector === null ? {} : (readSelector(r, t.namespaceSelector, [...at, 'namespaceSelector']) ?? {}),
    allowedRegistries: r.list(t.allowedRegistries, [...at, 'allowedRegistries'], (x, q) => (r.nonEmpty(x, q) === undefined ? undefined : r.string(x, q, REGISTRY_PREFIX))),
    maxResources,
  };
}

const TOP_FIELDS = [
  'annotationPrefix',
  'policy',
  'defaultProfiles',
  'excludeNamespaces',
  'neverInjectSelector',
  'alwaysInjectSelector',
  'onConflict',
  'allowPodOptOut',
  'profiles',
  'tenantProfiles',
];

function readConfig(r: Reader, data: unknown): InjectorConfig {
  const top = r.object(data ?? {}, [], TOP_FIELDS) ?? {};
  const config: InjectorConfig = {
    annotationPrefix:
      r.string(top.annotationPrefix, ['annotationPrefix'], { pattern: DNS_SUBDOMAIN, message: 'must be a DNS subdomain such as sidecar-injector.io', max: 253 }) ??
      'sidecar-injector.io',
    policy: r.oneOf(top.policy, ['policy'], ['opt-in', 'opt-out'] as const, 'opt-in'),
    defaultProfiles: r.list(top.defaultProfiles, ['defaultProfiles'], (x, p) => r.string(x, p)),
    excludeNamespaces:
      top.excludeNamespaces === undefined
        ? ['kube-system', 'kube-public', 'kube-node-lease']
        : r.list(top.excludeNamespaces, ['excludeNamespaces'], (x, p) => r.string(x, p)),
    neverInjectSelector: r.list(top.neverInjectSelector, ['neverInjectSelector'], (x, p) => readSelector(r, x, p)),
    alwaysInjectSelector: r.list(top.alwaysInjectSelector, ['alwaysInjectSelector'], (x, p) => readSelector(r, x, p)),
    onConflict: r.oneOf(top.onConflict, ['onConflict'], ['skip', 'deny'] as const, 'skip'),
    allowPodOptOut: r.boolean(top.allowPodOptOut, ['allowPodOptOut'], true),
    profiles: {},
    tenantProfiles: readTenantProfiles(r, top.tenantProfiles, ['tenantProfiles']),
  };
  for (const [name, value] of Object.entries(r.object(top.profiles, ['profiles'], undefined) ?? {})) {
    if (!PROFILE_NAME.test(name)) r.fail(['profiles', name], 'profile names must be lower case letters, digits, -, _ and .');
    const profile = readProfile(r, value, ['profiles', name]);
    if (profile) config.profiles[name] = profile;
  }
  return config;
}

/** Checks that span fields: what makes an injected pod invalid however its parts look alone. */
function profileProblems(p: Profile): Problem[] {
  const problems: Problem[] = [];
  const volumeNames = new Set<string>();
  p.volumes.forEach((v, i) => {
    if (volumeNames.has(v.name)) problems.push({ path: ['volumes', i, 'name'], message: `duplicate volume name "${v.name}"` });
    volumeNames.add(v.name);
    const sources = Object.keys(v).filter((k) => k !== 'name');
    if (sources.length !== 1) problems.push({ path: ['volumes', i], message: 'must have exactly one volume source (e.g. emptyDir: {})' });
  });

  const containerNames = new Set<string>();
  const ports = new Set<string>();
  const lists = [
    ['containers', p.containers],
    ['initContainers', p.initContainers],
  ] as const;
  for (const [list, containers] of lists) {
    containers.forEach((c, i) => {
      const at = (...rest: (string | number)[]) => [list, i, ...rest];
      if (containerNames.has(c.name)) problems.push({ path: at('name'), message: `duplicate container name "${c.name}"` });
      containerNames.add(c.name);
      (c.volumeMounts ?? []).forEach((m, j) => {
        if (!volumeNames.has(m.name)) problems.push({ path: at('volumeMounts', j, 'name'), message: `names no volume of this profile: "${m.name}"` });
      });
      // Sidecars run alongside each other; plain init containers run one at a time.
      if (list === 'containers') {
        (c.ports ?? []).forEach((port, j) => {
          const key = `${port.containerPort}/${port.protocol ?? 'TCP'}`;
          if (ports.has(key)) problems.push({ path: at('ports', j, 'containerPort'), message: `port ${key} used twice` });
          ports.add(key);
        });
      }
      if (list === 'containers' && c.restartPolicy !== undefined && !(p.nativeSidecar !== false && c.restartPolicy === 'Always')) {
        problems.push({ path: at('restartPolicy'), message: 'only allowed as Always, with nativeSidecar: true or auto (set by the injector)' });
      }
      if (list === 'initContainers' && c.restartPolicy !== undefined) {
        problems.push({ path: at('restartPolicy'), message: 'not allowed on initContainers; use nativeSidecar: true' });
      }
      const requests = c.resources?.requests ?? {};
      const limits = c.resources?.limits ?? {};
      for (const [resource, request] of Object.entries(requests)) {
        const limit = limits[resource];
        if (limit !== undefined && compareQuantities(String(request), String(limit)) === 1) {
          problems.push({ path: at('resources', 'requests', resource), message: `request ${request} exceeds limit ${limit}` });
        }
      }
    });
  }

  p.appVolumeMounts.forEach((m, i) => {
    if (!volumeNames.has(m.name)) problems.push({ path: ['appVolumeMounts', i, 'name'], message: `names no volume of this profile: "${m.name}"` });
  });
  return problems;
}

/** `profiles.log-shipper.containers[0].image` */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? key : `.${key}`;
  }
  return out || '(root)';
}

export type ProfileSpecResult = { ok: true; profile: Profile } | { ok: false; errors: string[] };

/**
 * A SidecarProfile's spec (SPEC 9: exactly a profile of section 4), checked as
 * a config profile is; every error is `spec.<path>: message`. Whether the
 * profile stays inside the tenant limits is core/tenant-profile.ts's judgment.
 */
export function validateProfileSpec(spec: unknown): ProfileSpecResult {
  const r = new Reader();
  const profile = readProfile(r, spec, ['spec']);
  if (profile && r.problems.length === 0) for (const problem of profileProblems(profile)) r.fail(['spec', ...problem.path], problem.message);
  if (!profile || r.problems.length > 0) return { ok: false, errors: r.problems.map((e) => `${formatPath(e.path)}: ${e.message}`) };
  return { ok: true, profile };
}

export type ValidationResult = { ok: true; config: InjectorConfig } | { ok: false; errors: string[] };

/** Validates parsed YAML/JSON; every error is `path: message`. Cross-field checks run once the shapes are right. */
export function validateConfig(data: unknown): ValidationResult {
  const r = new Reader();
  const config = readConfig(r, data);
  if (r.problems.length === 0) {
    config.defaultProfiles.forEach((name, i) => {
      if (!Object.hasOwn(config.profiles, name)) r.fail(['defaultProfiles', i], `no profile named "${name}"`);
    });
    for (const [name, profile] of Object.entries(config.profiles)) {
      for (const problem of profileProblems(profile)) r.fail(['profiles', name, ...problem.path], problem.message);
    }
  }
  if (r.problems.length > 0) return { ok: false, errors: r.problems.map((e) => `${formatPath(e.path)}: ${e.message}`) };
  return { ok: true, config };
}
