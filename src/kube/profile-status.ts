/**
 * SidecarProfile status (SPEC 9): each indexed profile judged by the core's
 * tenantVerdict against the config in force and its namespace's labels, the
 * verdict written as the `Accepted` condition through the status subresource
 * — only when status, reason, message or observedGeneration differ from what
 * is stored. lastTransitionTime moves only when status does (metav1.Condition,
 * k8s.io/apimachinery pkg/apis/meta/v1/types.go; meta.SetStatusCondition in
 * pkg/api/meta/conditions.go does the same), and conditions of other types
 * are kept as found.
 *
 * The write is a JSON merge patch of /status carrying the resourceVersion it
 * was computed from, which the API server takes as a precondition (a
 * mismatch is 409 Conflict: k8s.io/apiserver pkg/registry/generic/registry
 * store.go, Update). On a conflict the object is read again and judged again,
 * as client-go's retry.RetryOnConflict does. Other failures retry with
 * backoff (SyncLoop).
 *
 * Every replica writes, as for the caBundle and matchConditions: replicas
 * with one config compute one condition, so the second writer finds it
 * already there. A change that touches only metadata or status (a status
 * write, ours or another replica's) is not judged again, so replicas that
 * hold different configs for a moment (a rollout, a ConfigMap reaching them
 * seconds apart) do not answer each other's writes in a loop; the periodic
 * pass puts back a condition someone else overwrote.
 *
 * When: at the first list and every relist, when a profile is created or
 * its generation moves, when the config is reloaded (`configChanged`), when
 * a namespace's labels change (`namespaceChanged`, from the namespace cache),
 * and every `resyncMs`.
 */
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import { tenantVerdict, type TenantReason, type TenantVerdict } from '../core/tenant-profile.js';
import { KubeError, type KubeClient } from './client.js';
import type { NamespaceLookup } from './namespaces.js';
import { readIndexedProfile, sidecarProfilePath, type IndexedProfile, type ProfileChange, type StoredCondition } from './sidecar-profiles.js';
import { SyncLoop } from './sync-loop.js';

export const ACCEPTED = 'Accepted';
/** The condition message's bound, in characters (the CRD allows metav1.Condition's 32768; people read this one). */
export const MESSAGE_MAX = 1024;
export const TENANT_REASONS: readonly TenantReason[] = ['Accepted', 'NotServed', 'Shadowed', 'Invalid', 'OutsideLimits'];

export type StatusWriteResult = 'written' | 'conflict' | 'failure';

/** The condition fields the verdict decides; the stored one is rewritten only when one of them differs. */
export interface AcceptedCondition {
  type: typeof ACCEPTED;
  status: 'True' | 'False';
  reason: TenantReason;
  message: string;
  observedGeneration: number;
}

/**
 * A message within `max` characters (code points), cut between problems (tenantVerdict joins them
 * with "; ") with how many were left out; a first problem longer than the bound is cut with "…".
 */
export function boundMessage(message: string, max = MESSAGE_MAX): string {
  const length = (s: string) => Array.from(s).length;
  if (length(message) <= max) return message;
  const parts = message.split('; ');
  const more = (n: number) => `; … and ${n} more`;
  let kept = 0;
  while (kept < parts.length - 1 && length(parts.slice(0, kept + 1).join('; ') + more(parts.length - kept - 1)) <= max) kept += 1;
  if (kept > 0) return parts.slice(0, kept).join('; ') + more(parts.length - kept);
  return `${Array.from(message).slice(0, max - 1).join('')}…`;
}

export function acceptedCondition(verdict: TenantVerdict, generation: number): AcceptedCondition {
  return { type: ACCEPTED, status: verdict.accepted ? 'True' : 'False', reason: verdict.reason, message: boundMessage(verdict.message), observedGeneration: generation };
}

/** Whether the stored condition already says what `wanted` says (lastTransitionTime aside). */
export function sameCondition(stored: StoredCondition | undefined, wanted: AcceptedCondition): boolean {
  return (
    stored !== undefined &&
    stored.status === wanted.status &&
    stored.reason === wanted.reason &&
    (stored.message ?? '') === wanted.message &&
    stored.observedGeneration === wanted.observedGeneration
  );
}

/** metav1.Time: RFC 3339 in seconds, UTC. */
const metaTime = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The conditions to store: ours replaced (its lastTransitionTime kept while its status stays), the others as found. Pure. */
export function nextConditions(stored: readonly StoredCondition[], wanted: AcceptedCondition, now: Date): StoredCondition[] {
  const before = stored.find((c) => c.type === ACCEPTED);
  const lastTransitionTime = before?.status === wanted.status && typeof before.lastTransitionTime === 'string' ? before.lastTransitionTime : metaTime(now);
  return [...stored.filter((c) => c.type !== ACCEPTED), { ...wanted, lastTransitionTime }];
}

/** What the writer reads of the SidecarProfile index. */
export interface ProfileSource {
  readonly synced: boolean;
  get(namespace: string, name: string): IndexedProfile | undefined;
  all(): IndexedProfile[];
  inNamespace(namespace: string): IndexedProfile[];
  onChange(listener: (change: ProfileChange) => void): () => void;
}

export interface ProfileStatusOptions {
  client: KubeClient;
  logger: Logger;
  index: ProfileSource;
  /** The config in force, read at each judgment. */
  config: () => CompiledConfig;
  /** A namespace's labels: the namespace cache's lookup (held, or one bounded read). */
  namespaceLabels: (namespace: string) => Promise<NamespaceLookup>;
  onWrite(result: StatusWriteResult): void;
  /** After each pass: the indexed profiles by the reason of their verdict. */
  onVerdicts?(counts: Record<TenantReason, number>): void;
  /** Every profile judged again this often; default 60 s. */
  resyncMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Writes in flight at once; default 4. */
  concurrency?: number;
  now?: () => Date;
}

/** A write of ours the index has not shown yet: while the index still holds `basedOn`, the stored state is this. */
interface Written {
  basedOn: string;
  resourceVersion: string;
  conditions: StoredCondition[];
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;
const MAX_CONFLICTS = 3;

export class ProfileStatusWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  private dirty = new Set<string>();
  private everything = false;
  private readonly written = new Map<string, Written>();
  private readonly verdicts = new Map<string, TenantReason>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: ProfileStatusOptions) {
    this.log = opts.logger.child({ component: 'sidecarprofile-status' });
    this.loop = new SyncLoop(() => this.pass(), {
      logger: this.log,
      what: 'SidecarProfile status',
      backoffInitialMs: opts.backoffInitialMs ?? 1000,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      onFailure: () => undefined,
    });
  }

  /** Follows the index from now on, and judges what it already holds. */
  start(): void {
    if (this.unsubscribe || this.stopped) return;
    this.unsubscribe = this.opts.index.onChange((change) => this.changed(change));
    this.all();
    this.timer = setInterval(() => this.all(), this.opts.resyncMs ?? 60_000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.timer);
    this.loop.stop();
  }

  /** The config was reloaded: every profile is judged again at once. */
  configChanged(): void {
    this.all();
  }

  /** A namespace's labels changed (undefined: the namespaces were relisted): its profiles are judged again. */
  namespaceChanged(namespace: string | undefined): void {
    if (namespace === undefined) return this.all();
    const keys = this.opts.index.inNamespace(namespace).map((r) => keyOf(r.tenant.namespace, r.tenant.name));
    if (keys.length === 0) return;
    for (const key of keys) this.dirty.add(key);
    this.loop.sync();
  }

  /** Resolves true once everything asked so far is written (or found equal), false if `boundMs` passes first. */
  settled(boundMs: number): Promise<boolean> {
    return this.loop.settled(boundMs);
  }

  private all(): void {
    if (this.stopped) return;
    this.everything = true;
    this.loop.sync();
  }

  private changed(change: ProfileChange): void {
    if (change.type === 'resynced') return this.all();
    const key = keyOf(change.namespace, change.name);
    if (change.type === 'deleted') {
      this.written.delete(key);
      this.verdicts.delete(key);
      this.dirty.delete(key);
      this.opts.onVerdicts?.(this.counts());
      return;
    }
    // Only metadata or status moved (a status write): nothing the verdict reads changed.
    if (!change.generationChanged) return;
    this.dirty.add(key);
    this.loop.sync();
  }

  private counts(): Record<TenantReason, number> {
    const counts = Object.fromEntries(TENANT_REASONS.map((r) => [r, 0])) as Record<TenantReason, number>;
    for (const [key, reason] of this.verdicts) {
      const slash = key.indexOf('/');
      // A profile deleted while it was being judged is not counted.
      if (this.opts.index.get(key.slice(0, slash), key.slice(slash + 1))) counts[reason] += 1;
    }
    return counts;
  }

  /** One pass over what is dirty (or everything); failed profiles stay dirty and the pass throws, so SyncLoop backs off and retries them. */
  private async pass(): Promise<void> {
    const { index } = this.opts;
    if (!index.synced) return; // the first list's `resynced` asks again
    let keys: string[];
    if (this.everything) {
      this.everything = false;
      this.dirty.clear();
      const records = index.all();
      keys = records.map((r) => keyOf(r.tenant.namespace, r.tenant.name));
      const present = new Set(keys);
      for (const key of [...this.verdicts.keys()]) if (!present.has(key)) this.verdicts.delete(key);
      for (const key of [...this.written.keys()]) if (!present.has(key)) this.written.delete(key);
    } else {
      keys = [...this.dirty];
      this.dirty.clear();
    }
    const failed: string[] = [];
    let lastError: unknown;
    let next = 0;
    const worker = async () => {
      while (next < keys.length && !this.stopped) {
        const key = keys[next++] as string;
        try {
          await this.reconcile(key);
        } catch (err) {
          failed.push(key);
          lastError = err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 4, keys.length) }, worker));
    this.opts.onVerdicts?.(this.counts());
    if (failed.length > 0) {
      for (const key of failed) this.dirty.add(key);
      throw lastError instanceof Error ? lastError : new Error(String(lastError));
    }
  }

  /** Judges one profile and writes its condition when it differs; re-reads and judges again on a conflict. */
  private async reconcile(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    let record = this.opts.index.get(namespace, name);
    let fromIndex = true;
    for (let attempt = 1; record; attempt += 1) {
      // Our last write, until the index shows it (or something newer).
      const mine = this.written.get(key);
      const ours = fromIndex && mine?.basedOn === record.resourceVersion ? mine : undefined;
      if (fromIndex && mine && !ours) this.written.delete(key);
      const resourceVersion = ours?.resourceVersion ?? record.resourceVersion;
      const stored = ours?.conditions ?? record.conditions;

      const ns = await this.opts.namespaceLabels(namespace);
      if (ns.labels === undefined) throw new Error(`SidecarProfile ${key}: ${ns.problem}`);
      const verdict = tenantVerdict(record.tenant, ns.labels, this.opts.config());
      this.verdicts.set(key, verdict.reason);
      const wanted = acceptedCondition(verdict, record.tenant.generation);
      if (sameCondition(stored.find((c) => c.type === ACCEPTED), wanted)) return;

      const conditions = nextConditions(stored, wanted, this.opts.now?.() ?? new Date());
      try {
        const { body } = await this.opts.client.request('PATCH', `${sidecarProfilePath(namespace, name)}/status`, {
          contentType: 'application/merge-patch+json',
          body: { metadata: { resourceVersion }, status: { conditions } },
          timeoutMs: 10_000,
        });
        this.opts.onWrite('written');
        const written = (body as { metadata?: { resourceVersion?: unknown } } | undefined)?.metadata?.resourceVersion;
        if (fromIndex && typeof written === 'string') this.written.set(key, { basedOn: record.resourceVersion, resourceVersion: written, conditions });
        this.log.info({ profile: key, generation: record.tenant.generation, accepted: wanted.status, reason: wanted.reason }, 'SidecarProfile status written');
        return;
      } catch (err) {
        if (err instanceof KubeError && err.status === 404) return; // deleted meanwhile: the watch says so too
        if (!(err instanceof KubeError && err.status === 409) || attempt >= MAX_CONFLICTS) {
          this.opts.onWrite('failure');
          throw err;
        }
        this.opts.onWrite('conflict');
        record = await this.read(namespace, name);
        fromIndex = false;
      }
    }
  }

  /** The object as stored now (after a conflict); undefined when it is gone. */
  private async read(namespace: string, name: string): Promise<IndexedProfile | undefined> {
    try {
      const { body } = await this.opts.client.request('GET', sidecarProfilePath(namespace, name), { timeoutMs: 10_000 });
      const read = readIndexedProfile(body as Record<string, unknown>);
      if (!read.ok) throw new Error(`SidecarProfile ${namespace}/${name}: ${read.error}`);
      return read.record;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }
}
