/**
 * Each replica's Lease (coordination.k8s.io/v1, in the injector's namespace):
 * how the replicas that write one caBundle learn what the others serve with
 * and trust (SPEC 7, Certificates), as kube-apiserver's identity leases do.
 * A Lease counts while it is live: renewTime + leaseDurationSeconds is still
 * ahead. A replica that stops deletes its own; one that dies is forgotten
 * once its Lease expires.
 *
 * The Lease carries fingerprints only: a CA another replica needs is kept in
 * the bundle from what the bundle already holds, and added by that replica
 * itself when it is missing.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { V1Lease, V1LeaseList } from '@kubernetes/client-node';
import { KubeError, type KubeClient } from './client.js';

export const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
/** Which webhook configuration's caBundle the replica writes: only replicas of one configuration count for each other. */
export const LEASE_LABEL = 'sidecar-injector.io/webhook-configuration';
export const SERVING_ANNOTATION = 'sidecar-injector.io/serving-cas';
export const TRUSTED_ANNOTATION = 'sidecar-injector.io/trusted-cas';

export interface ReplicaIdentity {
  name: string;
  namespace: string;
}

/** POD_NAME, else hostname-pid; POD_NAMESPACE, else the service account's namespace, else default. */
export function replicaIdentity(
  env: Readonly<Record<string, string | undefined>>,
  host: string = hostname(),
  pid: number = process.pid,
  readNamespaceFile: () => string = () => readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8'),
): ReplicaIdentity {
  let fileNamespace: string | undefined;
  try {
    fileNamespace = readNamespaceFile().trim() || undefined;
  } catch {
    fileNamespace = undefined;
  }
  // A Lease name is a DNS subdomain: a hostname may hold capitals or underscores.
  const fallback = `${host}-${pid}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '').slice(0, 253);
  return { name: env.POD_NAME || fallback || `replica-${pid}`, namespace: env.POD_NAMESPACE || fileNamespace || 'default' };
}

/** What a replica needs the API server to trust: the CAs it serves with (or is about to) and its trust set. */
export interface ReplicaNeeds {
  serving: readonly string[];
  trusted: readonly string[];
}

/** MicroTime: RFC 3339 with microseconds, as the API server parses it. */
export const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** Fingerprints that live replicas other than `self` need, from their Leases. Pure. */
export function liveNeeds(leases: readonly V1Lease[], self: string, now: Date): Set<string> {
  const needs = new Set<string>();
  for (const lease of leases) {
    if (lease.metadata?.name === self) continue;
    const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime as unknown as string).getTime() : NaN;
    const duration = lease.spec?.leaseDurationSeconds ?? 0;
    if (!(renewed + duration * 1000 > now.getTime())) continue;
    for (const key of [SERVING_ANNOTATION, TRUSTED_ANNOTATION]) {
      for (const fp of (lease.metadata?.annotations?.[key] ?? '').split(',')) if (fp) needs.add(fp);
    }
  }
  return needs;
}

export interface ReplicaLeaseOptions {
  client: KubeClient;
  identity: ReplicaIdentity;
  webhookConfiguration: string;
  durationSeconds: number;
}

export class ReplicaLease {
  private resourceVersion: string | undefined;
  private readonly collection: string;

  constructor(private readonly opts: ReplicaLeaseOptions) {
    this.collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.identity.namespace)}/leases`;
  }

  get name(): string {
    return this.opts.identity.name;
  }

  private body(needs: ReplicaNeeds, now: Date): V1Lease {
    const { identity, webhookConfiguration, durationSeconds } = this.opts;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: identity.name,
        namespace: identity.namespace,
        labels: { 'app.kubernetes.io/component': 'sidecar-injector-replica', [LEASE_LABEL]: webhookConfiguration },
        annotations: { [SERVING_ANNOTATION]: [...new Set(needs.serving)].join(','), [TRUSTED_ANNOTATION]: [...new Set(needs.trusted)].join(',') },
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      spec: { holderIdentity: identity.name, leaseDurationSeconds: durationSeconds, renewTime: microTime(now) as unknown as Date },
    };
  }

  /** Creates or renews the Lease with these needs; a conflict (our copy is old, or it exists from an earlier run) is read and retried once. */
  async publish(needs: ReplicaNeeds, now = new Date()): Promise<void> {
    const path = `${this.collection}/${encodeURIComponent(this.name)}`;
    for (let attempt = 0; ; attempt += 1) {
      try {
        const { body } = this.resourceVersion
          ? await this.opts.client.request('PUT', path, { body: this.body(needs, now), timeoutMs: 10_000 })
          : await this.opts.client.request('POST', this.collection, { body: this.body(needs, now), timeoutMs: 10_000 });
        this.resourceVersion = (body as V1Lease).metadata?.resourceVersion;
        return;
      } catch (err) {
        const stale = err instanceof KubeError && (err.status === 409 || (err.status === 404 && this.resourceVersion !== undefined));
        if (!stale || attempt > 0) throw err;
        this.resourceVersion = undefined;
        if ((err as KubeError).status === 409) {
          const { body } = await this.opts.client.request('GET', path, { timeoutMs: 10_000 });
          this.resourceVersion = (body as V1Lease).metadata?.resourceVersion;
        }
      }
    }
  }

  /** The fingerprints the other live replicas of this webhook configuration need. */
  async others(now = new Date()): Promise<Set<string>> {
    const selector = encodeURIComponent(`${LEASE_LABEL}=${this.opts.webhookConfiguration}`);
    const { body } = await this.opts.client.request('GET', `${this.collection}?labelSelector=${selector}`, { timeoutMs: 10_000 });
    return liveNeeds((body as V1LeaseList).items ?? [], this.name, now);
  }

  /** Deletes the Lease (on shutdown), so the others stop counting this replica at once. */
  async release(): Promise<void> {
    if (this.resourceVersion === undefined) return;
    await this.opts.client.request('DELETE', `${this.collection}/${encodeURIComponent(this.name)}`, { timeoutMs: 2000 }).catch(() => undefined);
    this.resourceVersion = undefined;
  }
}
