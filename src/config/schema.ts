/**
 * The config file's schema. Validation returns every problem with its path
 * (`profiles.log-shipper.containers[0].image: required`), never throws.
 * Container and volume objects are checked against the core/v1 field names
 * (core-v1-fields.ts), so a typo fails here rather than making the API server
 * reject every injected pod.
 */
import { z } from 'zod';
import type { InjectorConfig } from '../core/config.js';
import { parseQuantity } from '../core/quantity.js';
import { CONTAINER_FIELDS, VOLUME_FIELDS } from './core-v1-fields.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Profile names travel in a label value and in comma lists.
const PROFILE_NAME = /^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$/;

const dnsLabel = z
  .string()
  .max(63, { error: 'must be at most 63 characters' })
  .regex(DNS_LABEL, { error: 'must be a DNS label (lower case letters, digits and -)' });

const quantity = z.union([z.string(), z.number()]).refine((q) => parseQuantity(String(q)) !== undefined, {
  error: 'must be a Kubernetes quantity such as 100m, 64Mi or 1',
});

const resourceList = z.record(z.string(), quantity);

const anyOf = (names: readonly string[]) => Object.fromEntries(names.map((name) => [name, z.unknown().optional()]));

const container = z.strictObject({
  ...anyOf(CONTAINER_FIELDS),
  name: dnsLabel,
  image: z.string().min(1, { error: 'must not be empty' }),
  ports: z
    .array(
      z.looseObject({
        containerPort: z.number().int().min(1).max(65535, { error: 'must be a port number (1-65535)' }),
        protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
      }),
    )
    .optional(),
  volumeMounts: z
    .array(z.looseObject({ name: z.string(), mountPath: z.string().min(1, { error: 'must not be empty' }) }))
    .optional(),
  resources: z.looseObject({ requests: resourceList.optional(), limits: resourceList.optional() }).optional(),
  restartPolicy: z.string().optional(),
});

const volume = z.strictObject({
  ...anyOf(VOLUME_FIELDS),
  name: dnsLabel,
});

const volumeMount = z.looseObject({
  name: z.string(),
  mountPath: z.string().min(1, { error: 'must not be empty' }),
});

const selector = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string().min(1),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

const profile = z.strictObject({
  nativeSidecar: z.boolean().default(false),
  containers: z.array(container).default([]),
  initContainers: z.array(container).default([]),
  volumes: z.array(volume).default([]),
  appVolumeMounts: z.array(volumeMount).default([]),
  overrides: z
    .strictObject({
      resources: z.boolean().default(false),
      imageRegistries: z.array(z.string().min(1, { error: 'must not be empty' })).default([]),
    })
    .default({ resources: false, imageRegistries: [] }),
});

type ParsedProfile = z.infer<typeof profile>;

const configSchema = z
  .strictObject({
    annotationPrefix: z
      .string()
      .max(253)
      .regex(DNS_SUBDOMAIN, { error: 'must be a DNS subdomain such as sidecar-injector.io' })
      .default('sidecar-injector.io'),
    policy: z.enum(['opt-in', 'opt-out']).default('opt-in'),
    defaultProfiles: z.array(z.string()).default([]),
    excludeNamespaces: z.array(z.string()).default(['kube-system', 'kube-public', 'kube-node-lease']),
    neverInjectSelector: z.array(selector).default([]),
    alwaysInjectSelector: z.array(selector).default([]),
    onConflict: z.enum(['skip', 'deny']).default('skip'),
    allowPodOptOut: z.boolean().default(true),
    profiles: z.record(z.string().regex(PROFILE_NAME, { error: 'profile names must be lower case letters, digits, -, _ and .' }), profile).default({}),
  })
  .superRefine((cfg, ctx) => {
    cfg.defaultProfiles.forEach((name, i) => {
      if (!Object.hasOwn(cfg.profiles, name)) {
        ctx.addIssue({ code: 'custom', path: ['defaultProfiles', i], message: `no profile named "${name}"` });
      }
    });
    for (const [name, p] of Object.entries(cfg.profiles)) {
      for (const problem of profileProblems(p)) {
        ctx.addIssue({ code: 'custom', path: ['profiles', name, ...problem.path], message: problem.message });
      }
    }
  });

interface Problem {
  path: (string | number)[];
  message: string;
}

/** Checks that span fields: what makes an injected pod invalid however its parts look alone. */
function profileProblems(p: ParsedProfile): Problem[] {
  const problems: Problem[] = [];
  const volumeNames = new Set<string>();
  p.volumes.forEach((v, i) => {
    if (volumeNames.has(v.name)) problems.push({ path: ['volumes', i, 'name'], message: `duplicate volume name "${v.name}"` });
    volumeNames.add(v.name);
    const sources = Object.keys(v).filter((k) => k !== 'name');
    if (sources.length !== 1) {
      problems.push({ path: ['volumes', i], message: 'must have exactly one volume source (e.g. emptyDir: {})' });
    }
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
        if (!volumeNames.has(m.name)) {
          problems.push({ path: at('volumeMounts', j, 'name'), message: `names no volume of this profile: "${m.name}"` });
        }
      });
      // Sidecars run alongside each other; plain init containers run one at a time.
      if (list === 'containers') {
        (c.ports ?? []).forEach((port, j) => {
          const key = `${port.containerPort}/${port.protocol ?? 'TCP'}`;
          if (ports.has(key)) problems.push({ path: at('ports', j, 'containerPort'), message: `port ${key} used twice` });
          ports.add(key);
        });
      }
      if (list === 'containers' && c.restartPolicy !== undefined && !(p.nativeSidecar && c.restartPolicy === 'Always')) {
        problems.push({ path: at('restartPolicy'), message: 'only allowed as Always, with nativeSidecar: true (set by the injector)' });
      }
      if (list === 'initContainers' && c.restartPolicy !== undefined) {
        problems.push({ path: at('restartPolicy'), message: 'not allowed on initContainers; use nativeSidecar: true' });
      }
      const requests = c.resources?.requests ?? {};
      const limits = c.resources?.limits ?? {};
      for (const [resource, request] of Object.entries(requests)) {
        const limit = limits[resource];
        if (limit !== undefined && (parseQuantity(String(request)) ?? 0) > (parseQuantity(String(limit)) ?? Infinity)) {
          problems.push({ path: at('resources', 'requests', resource), message: `request ${request} exceeds limit ${limit}` });
        }
      }
    });
  }

  p.appVolumeMounts.forEach((m, i) => {
    if (!volumeNames.has(m.name)) {
      problems.push({ path: ['appVolumeMounts', i, 'name'], message: `names no volume of this profile: "${m.name}"` });
    }
  });
  return problems;
}

/** `profiles.log-shipper.containers[0].image` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out || '(root)';
}

function describe(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  switch (issue.code) {
    case 'invalid_type':
      return [{ path: issue.path, message: issue.input === undefined ? 'required' : `must be ${article(issue.expected)}` }];
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ path: [...issue.path, k], message: 'unknown field' }));
    case 'invalid_value':
      return [{ path: issue.path, message: `must be one of: ${issue.values.map(String).join(', ')}` }];
    default:
      return [{ path: issue.path, message: issue.message }];
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

const CORE_V1_LISTS = ['containers', 'initContainers', 'volumes', 'appVolumeMounts'] as const;

/**
 * The schema's output lists an object's keys in schema order; containers and
 * volumes are injected as the operator wrote them (validated, with no
 * defaults added), so take those from the input.
 */
function keepWrittenKeyOrder(config: InjectorConfig, data: unknown): void {
  const rawProfiles = (data as { profiles?: Record<string, Record<string, unknown>> } | null)?.profiles ?? {};
  for (const [name, profile] of Object.entries(config.profiles)) {
    for (const list of CORE_V1_LISTS) {
      const written = rawProfiles[name]?.[list];
      if (Array.isArray(written)) (profile as unknown as Record<string, unknown>)[list] = written;
    }
  }
}

export type ValidationResult = { ok: true; config: InjectorConfig } | { ok: false; errors: string[] };

/** Validates parsed YAML/JSON; every error is `path: message`. */
export function validateConfig(data: unknown): ValidationResult {
  const result = configSchema.safeParse(data ?? {}, { reportInput: true });
  if (result.success) {
    const config = result.data as unknown as InjectorConfig;
    keepWrittenKeyOrder(config, data);
    return { ok: true, config };
  }
  const errors = result.error.issues.flatMap(describe).map((e) => `${formatPath(e.path)}: ${e.message}`);
  return { ok: false, errors };
}
