/**
 * The SidecarProfile index (SPEC 9, webhook mode): every SidecarProfile of
 * every namespace, listed and watched by a reflector (reflector.ts, the
 * namespace cache's discipline: resourceVersion, bookmarks, 410 Gone,
 * backoff), each read once into the core's TenantProfile
 * (config/sidecar-profile.ts). Admissions read it synchronously through
 * `lookup`, which hands out the namespace's own map: no copy, no call.
 *
 * Without the CustomResourceDefinition (404) the index serves nothing, says
 * so once and keeps looking, so installing the CRD later needs no restart.
 *
 * Beside each TenantProfile the index keeps what the status writer needs:
 * the object's resourceVersion (its write precondition) and its
 * status.conditions as stored.
 */
import type { Logger } from 'pino';
import type { TenantProfile, TenantProfileLookup, TenantProfiles } from '../core/tenant-profile.js';
import { readSidecarProfile, SIDECAR_PROFILE_API_VERSION, SIDECAR_PROFILE_GROUP, SIDECAR_PROFILE_KIND, SIDECAR_PROFILE_PLURAL, SIDECAR_PROFILE_VERSION } from '../config/sidecar-profile.js';
import type { KubeClient } from './client.js';
import { Reflector, type KubeObject, type ReflectorStore, type WatchRestartReason } from './reflector.js';

/** All namespaces' SidecarProfiles. */
export const SIDECAR_PROFILES_PATH = `/apis/${SIDECAR_PROFILE_GROUP}/${SIDECAR_PROFILE_VERSION}/${SIDECAR_PROFILE_PLURAL}`;

/** One SidecarProfile's path (add `/status` for the status subresource). */
export function sidecarProfilePath(namespace: string, name: string): string {
  return `/apis/${SIDECAR_PROFILE_GROUP}/${SIDECAR_PROFILE_VERSION}/namespaces/${encodeURIComponent(namespace)}/${SIDECAR_PROFILE_PLURAL}/${encodeURIComponent(name)}`;
}

/** metav1.Condition as stored (k8s.io/apimachinery pkg/apis/meta/v1/types.go); fields another writer set are kept as found. */
export interface StoredCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
  [field: string]: unknown;
}

export interface IndexedProfile {
  tenant: TenantProfile;
  /** metadata.resourceVersion: the precondition of a status write. */
  resourceVersion: string;
  /** status.conditions as stored, in order. */
  conditions: readonly StoredCondition[];
}

/**
 * What changed: one profile (`generationChanged` false when only its metadata or status moved, as
 * after a status write), one deleted, or everything (a relist).
 */
export type ProfileChange =
  | { type: 'upsert'; namespace: string; name: string; generationChanged: boolean }
  | { type: 'deleted'; namespace: string; name: string }
  | { type: 'resynced' };

export interface SidecarProfileIndexEvents {
  synced(synced: boolean): void;
  watchRestart(reason: WatchRestartReason): void;
}

export interface SidecarProfileIndexOptions {
  client: KubeClient;
  logger: Logger;
  events: SidecarProfileIndexEvents;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  pageSize?: number;
}

interface NamespaceEntry {
  /** What `lookup` returns, kept in step with `records`. */
  tenants: Map<string, TenantProfile>;
  records: Map<string, IndexedProfile>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function conditionsOf(object: Obj): StoredCondition[] {
  const conditions = isObj(object.status) ? object.status.conditions : undefined;
  if (!Array.isArray(conditions)) return [];
  return conditions.filter((c): c is StoredCondition => isObj(c) && typeof c.type === 'string' && typeof c.status === 'string');
}

/** A SidecarProfile from the API (a list item, a watch event, a GET) as the index holds it. */
export function readIndexedProfile(object: KubeObject): { ok: true; record: IndexedProfile } | { ok: false; error: string } {
  // Items of a custom resource list carry apiVersion and kind; a typed list's would not, and the path says what they are.
  const read = readSidecarProfile({ apiVersion: SIDECAR_PROFILE_API_VERSION, kind: SIDECAR_PROFILE_KIND, ...object });
  if (!read.ok) return read;
  const metadata = isObj(object.metadata) ? object.metadata : {};
  if (typeof metadata.namespace !== 'string' || metadata.namespace === '') return { ok: false, error: 'metadata.namespace: required' };
  const resourceVersion = typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '';
  return { ok: true, record: { tenant: read.tenant, resourceVersion, conditions: conditionsOf(object) } };
}

export class SidecarProfileIndex {
  private byNamespace = new Map<string, NamespaceEntry>();
  private readonly listeners = new Set<(change: ProfileChange) => void>();
  private readonly reflector: Reflector;
  private readonly log: Logger;

  /** The SidecarProfiles of a namespace, by name: the index's own map (read-only to callers), undefined when it has none. */
  readonly lookup: TenantProfileLookup = (namespace: string): TenantProfiles | undefined => this.byNamespace.get(namespace)?.tenants;

  constructor(opts: SidecarProfileIndexOptions) {
    this.log = opts.logger;
    this.reflector = new Reflector({
      client: opts.client,
      logger: opts.logger,
      path: SIDECAR_PROFILES_PATH,
      what: SIDECAR_PROFILE_KIND,
      store: this.store(),
      events: opts.events,
      absentWhenNotFound: true,
      backoffInitialMs: opts.backoffInitialMs,
      backoffMaxMs: opts.backoffMaxMs,
      pageSize: opts.pageSize,
    });
  }

  /** The first list is in (or the API server said SidecarProfiles are not served). */
  get synced(): boolean {
    return this.reflector.synced;
  }

  /** Where the index is in the API server's history (list, event or bookmark). */
  get lastSyncResourceVersion(): string | undefined {
    return this.reflector.lastSyncResourceVersion;
  }

  /** The last list found no SidecarProfile resource (CRD not installed). */
  get notServed(): boolean {
    return this.reflector.notServed;
  }

  get(namespace: string, name: string): IndexedProfile | undefined {
    return this.byNamespace.get(namespace)?.records.get(name);
  }

  /** Every indexed profile (a snapshot: safe to iterate across awaits). */
  all(): IndexedProfile[] {
    return [...this.byNamespace.values()].flatMap((e) => [...e.records.values()]);
  }

  /** The profiles of one namespace (a snapshot). */
  inNamespace(namespace: string): IndexedProfile[] {
    return [...(this.byNamespace.get(namespace)?.records.values() ?? [])];
  }

  /** Calls `listener` after each change; returns how to stop. */
  onChange(listener: (change: ProfileChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  run(): Promise<void> {
    return this.reflector.run();
  }

  stop(): void {
    this.reflector.stop();
  }

  private notify(change: ProfileChange): void {
    for (const listener of this.listeners) listener(change);
  }

  /** An API object into an index record; undefined (logged) when it is not a SidecarProfile we can hold. */
  private read(object: KubeObject): IndexedProfile | undefined {
    const read = readIndexedProfile(object);
    if (read.ok) return read.record;
    const metadata = isObj(object.metadata) ? object.metadata : {};
    this.log.warn({ name: metadata.name, namespace: metadata.namespace, problem: read.error }, 'SidecarProfile ignored');
    return undefined;
  }

  private store(): ReflectorStore {
    const put = (into: Map<string, NamespaceEntry>, record: IndexedProfile) => {
      const { namespace, name } = record.tenant;
      let entry = into.get(namespace);
      if (!entry) into.set(namespace, (entry = { tenants: new Map(), records: new Map() }));
      entry.tenants.set(name, record.tenant);
      entry.records.set(name, record);
    };
    return {
      replace: () => {
        const next = new Map<string, NamespaceEntry>();
        return {
          add: (item) => {
            const record = this.read(item);
            if (record) put(next, record);
          },
          done: () => {
            this.byNamespace = next;
            this.notify({ type: 'resynced' });
          },
        };
      },
      apply: (type, object) => {
        const metadata = isObj(object.metadata) ? object.metadata : {};
        const { namespace, name } = metadata;
        if (typeof namespace !== 'string' || typeof name !== 'string') return;
        if (type === 'DELETED') {
          const entry = this.byNamespace.get(namespace);
          if (!entry?.records.delete(name)) return;
          entry.tenants.delete(name);
          if (entry.records.size === 0) this.byNamespace.delete(namespace);
          this.notify({ type: 'deleted', namespace, name });
          return;
        }
        const record = this.read(object);
        if (!record) return;
        const before = this.get(namespace, name);
        put(this.byNamespace, record);
        this.notify({ type: 'upsert', namespace, name, generationChanged: before?.tenant.generation !== record.tenant.generation });
      },
    };
  }
}
