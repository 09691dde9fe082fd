/**
 * Reads the cluster for the audit: pods page by page (so 50,000 pods take the
 * memory of one page plus the report), the namespaces' labels, and the owner
 * chain of pods that need attention (ReplicaSet → Deployment, Job →
 * CronJob), each owner read once. The judgement is core/audit.ts.
 */
import { AuditReport, classifyPod, type Workload } from '../core/audit.js';
import type { CompiledConfig } from '../core/config.js';
import type { ServerFeatures } from '../core/inject.js';
import { sentToWebhook, type WebhookScope } from '../core/scope.js';
import { nextPod } from '../core/pod-diff.js';
import { POLICY_SELECTOR, policyScope, type PolicyObject } from '../core/policy.js';
import type { V1Pod } from '@kubernetes/client-node';
import type { TenantProfile, TenantProfileLookup } from '../core/tenant-profile.js';
import { readSidecarProfile, SIDECAR_PROFILE_API_VERSION, SIDECAR_PROFILE_PLURAL } from '../config/sidecar-profile.js';
import { KubeError, type KubeClient } from './client.js';
import { forEachPage } from './list.js';

type Labels = Readonly<Record<string, string>>;

export interface AuditOptions {
  client: KubeClient;
  config: CompiledConfig;
  server: ServerFeatures;
  /** One namespace; undefined for all. */
  namespace?: string;
  /** The webhook configuration's selectors: pods it does not send are not counted. Undefined: rules only. */
  scope?: readonly WebhookScope[];
  /** serve's namespace cache; without it the namespaces are listed. */
  namespaceLabels?: (namespace: string) => Labels | undefined;
  pageSize?: number;
  /** audit --diff: compute, per missed or stale workload, what its next pod would change. */
  diff?: boolean;
  /** serve's SidecarProfile index; without it the SidecarProfiles in scope are listed. */
  tenantProfiles?: TenantProfileLookup;
}


interface OwnerRef {
  apiVersion?: string;
  kind?: string;
  name?: string;
  controller?: boolean;
}

interface Owned {
  metadata?: { ownerReferences?: OwnerRef[] };
}

const NO_WORKLOAD: Workload = { namespace: '', kind: '', name: '' };

const controllerOf = (o: Owned): OwnerRef | undefined => {
  const refs = o.metadata?.ownerReferences ?? [];
  return refs.find((r) => r.controller) ?? refs[0];
};

/** Where to read an owner to learn its own owner; only the two hops the audit resolves. */
const OWNER_PATHS: Record<string, string> = {
  ReplicaSet: '/apis/apps/v1/namespaces/{ns}/replicasets/{name}',
  Job: '/apis/batch/v1/namespaces/{ns}/jobs/{name}',
};

class OwnerResolver {
  private cache = new Map<string, Workload>();
  constructor(private readonly client: KubeClient) {}

  async of(pod: V1Pod): Promise<Workload> {
    const namespace = pod.metadata?.namespace ?? '';
    const ref = controllerOf(pod);
    if (!ref?.kind || !ref.name) return { namespace, kind: 'Pod', name: pod.metadata?.name ?? '?' };
    const key = `${namespace}/${ref.kind}/${ref.name}`;
    const known = this.cache.get(key);
    if (known) return known;
    let workload: Workload = { namespace, kind: ref.kind, name: ref.name };
    const template = OWNER_PATHS[ref.kind];
    if (template) {
      try {
        const path = template.replace('{ns}', encodeURIComponent(namespace)).replace('{name}', encodeURIComponent(ref.name));
        const { body } = await this.client.request('GET', path, { timeoutMs: 10_000 });
        const parent = controllerOf(body as Owned);
        // A ReplicaSet owned by a Deployment, a Job owned by a CronJob: the user acts on the parent.
        if (parent?.kind && parent.name && ((ref.kind === 'ReplicaSet' && parent.kind === 'Deployment') || (ref.kind === 'Job' && parent.kind === 'CronJob'))) {
          workload = { namespace, kind: parent.kind, name: parent.name };
        }
      } catch (err) {
        // Gone or not readable (RBAC): the direct owner is still a useful answer.
        if (!(err instanceof KubeError)) throw err;
      }
    }
    this.cache.set(key, workload);
    return workload;
  }
}

interface NamespaceItem {
  metadata?: { name?: string; labels?: Record<string, string> };
}

async function namespaceLabelSource(opts: AuditOptions, pageSize: number): Promise<(ns: string) => Labels | undefined> {
  if (opts.namespaceLabels) return opts.namespaceLabels;
  const labels = new Map<string, Labels>();
  const keep = (item: NamespaceItem) => {
    if (item.metadata?.name) labels.set(item.metadata.name, item.metadata.labels ?? {});
  };
  if (opts.namespace) {
    const { body } = await opts.client.request('GET', `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}`, { timeoutMs: 10_000 });
    keep(body as NamespaceItem);
  } else {
    await forEachPage<NamespaceItem>(opts.client, '/api/v1/namespaces', pageSize, (page) => page.items?.forEach(keep));
  }
  return (ns) => labels.get(ns);
}

/**
 * The SidecarProfiles in scope, read once (SPEC 9): what audit compares tenant-injected pods with.
 * Without the CRD (404) there are none to know of; a profile that cannot be read is skipped (its pods
 * then show as orphaned, which is what a restart would make of them).
 */
async function tenantProfileSource(opts: AuditOptions, pageSize: number): Promise<TenantProfileLookup | undefined> {
  if (opts.tenantProfiles) return opts.tenantProfiles;
  const base = `/apis/${SIDECAR_PROFILE_API_VERSION}`;
  const path = opts.namespace ? `${base}/namespaces/${encodeURIComponent(opts.namespace)}/${SIDECAR_PROFILE_PLURAL}` : `${base}/${SIDECAR_PROFILE_PLURAL}`;
  const byNamespace = new Map<string, Map<string, TenantProfile>>();
  try {
    await forEachPage<unknown>(opts.client, path, pageSize, (page) => {
      for (const item of page.items ?? []) {
        const read = readSidecarProfile({ apiVersion: SIDECAR_PROFILE_API_VERSION, kind: 'SidecarProfile', ...(item as object) });
        if (!read.ok) continue;
        const names = byNamespace.get(read.tenant.namespace) ?? new Map<string, TenantProfile>();
        byNamespace.set(read.tenant.namespace, names.set(read.tenant.name, read.tenant));
      }
    });
  } catch (err) {
    if (err instanceof KubeError && err.status === 404) return undefined;
    throw err;
  }
  return (ns) => byNamespace.get(ns) ?? new Map<string, TenantProfile>();
}

/** One pass over the pods in scope. Retries from the start (up to 3 times) when a continue token expires (410). */
export async function runAudit(opts: AuditOptions): Promise<AuditReport> {
  const pageSize = opts.pageSize ?? 500;
  const labelsOf = await namespaceLabelSource(opts, pageSize);
  const tenantsOf = await tenantProfileSource(opts, pageSize);
  const owners = new OwnerResolver(opts.client);
  const podsPath = opts.namespace ? `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/pods` : '/api/v1/pods';
  for (let attempt = 1; ; attempt += 1) {
    const report = new AuditReport();
    try {
      await forEachPage<V1Pod>(opts.client, podsPath, pageSize, async (page) => {
        for (const pod of page.items ?? []) {
          const namespace = pod.metadata?.namespace ?? '';
          if (opts.scope && !sentToWebhook(opts.scope, namespace, labelsOf(namespace), pod.metadata?.labels)) continue;
          const tenants = tenantsOf?.(namespace);
          const verdict = classifyPod(pod, labelsOf(namespace), opts.config, opts.server, tenants);
          // Only pods that need attention are traced to their workload.
          const workload = verdict.state === 'fine' || verdict.state === 'injected' ? NO_WORKLOAD : await owners.of(pod);
          const next = opts.diff ? () => nextPod(pod, { namespace, namespaceLabels: labelsOf(namespace), server: opts.server, tenantProfiles: tenants }, opts.config) : undefined;
          report.add(pod.metadata?.name ?? '?', workload, verdict, next);
        }
      });
      return report;
    } catch (err) {
      if (err instanceof KubeError && err.status === 410 && attempt < 3) continue;
      throw err;
    }
  }
}

/** The label the chart sets on its MutatingWebhookConfiguration, so the audit finds it. */
export const WEBHOOK_CONFIG_SELECTOR = 'app.kubernetes.io/component=sidecar-injector-webhook';
const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

export type ScopeLookup = { ok: true; webhooks: WebhookScope[]; source: string } | { ok: false; none: true; reason?: string } | { ok: false; none: false; problem: string };

/** Policy mode: the bindings of the policies `policy` compiled (they carry our managed-by label), as the API server applies them. */
async function findPolicyScope(client: KubeClient): Promise<ScopeLookup> {
  const bindings: PolicyObject[] = [];
  try {
    await forEachPage<PolicyObject>(client, `/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings?labelSelector=${encodeURIComponent(POLICY_SELECTOR)}`, 100, (page) => {
      for (const b of page.items ?? []) bindings.push({ ...b, kind: 'MutatingAdmissionPolicyBinding' });
    });
  } catch {
    return { ok: false, none: true }; // an API server without policies, or no right to list them: the rules decide
  }
  if (bindings.length === 0) return { ok: false, none: true };
  return { ok: true, webhooks: policyScope(bindings), source: `MutatingAdmissionPolicyBindings ${bindings.map((b) => b.metadata.name).join(', ')}` };
}

/** The webhook configuration by name, else the one labelled by the chart, else the bindings of our policies; none found is an answer, not an error. */
export async function findWebhookScope(client: KubeClient, name: string | undefined): Promise<ScopeLookup> {
  const scopeOf = (mwc: { metadata?: { name?: string }; webhooks?: WebhookScope[] }) => ({
    ok: true as const,
    webhooks: mwc.webhooks ?? [],
    source: `MutatingWebhookConfiguration ${mwc.metadata?.name ?? '?'}`,
  });
  try {
    if (name) return scopeOf((await client.request('GET', `${MWC}/${encodeURIComponent(name)}`, { timeoutMs: 10_000 })).body as never);
    const found: { metadata?: { name?: string }; webhooks?: WebhookScope[] }[] = [];
    await forEachPage<(typeof found)[number]>(client, `${MWC}?labelSelector=${encodeURIComponent(WEBHOOK_CONFIG_SELECTOR)}`, 100, (page) => {
      found.push(...(page.items ?? []));
    });
    if (found.length > 1) return { ok: false, none: false, problem: `several MutatingWebhookConfigurations labelled ${WEBHOOK_CONFIG_SELECTOR} (${found.map((f) => f.metadata?.name).join(', ')}): pick one with --webhook-config` };
    return found[0] ? scopeOf(found[0]) : await findPolicyScope(client);
  } catch (err) {
    if (name && err instanceof KubeError && err.status === 404) return { ok: false, none: false, problem: `MutatingWebhookConfiguration ${name} not found` };
    // Looking for the chart's without being allowed to list them (a person's own credentials): as if none were found.
    if (!name) return { ok: false, none: true, reason: `cannot list MutatingWebhookConfigurations: ${(err as Error).message}` };
    return { ok: false, none: false, problem: `cannot read the webhook configuration: ${(err as Error).message}` };
  }
}

