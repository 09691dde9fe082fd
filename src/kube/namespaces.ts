/**
 * The namespace label cache behind rule 7: a reflector (reflector.ts: list,
 * then watch from the list's resourceVersion with bookmarks, relist after
 * `410 Gone`, backoff with jitter) keeping each namespace's labels.
 *
 * Admissions read the map synchronously. A namespace the cache has not seen
 * (created a moment ago, or before the first sync) is read directly, with a
 * short timeout, once for all the admissions that need it at that moment.
 * Listeners hear of label changes (the SidecarProfile status writer re-judges
 * a namespace's profiles against tenantProfiles.namespaceSelector).
 */
import type { Logger } from 'pino';
import { KubeError, type KubeClient } from './client.js';
import { Reflector, type KubeObject, type ReflectorStore, type WatchRestartReason } from './reflector.js';

export type { WatchRestartReason } from './reflector.js';

type Labels = Readonly<Record<string, string>>;

export type NamespaceLookup = { labels: Labels } | { labels: undefined; problem: string };

export interface NamespaceCacheEvents {
  synced(synced: boolean): void;
  watchRestart(reason: WatchRestartReason): void;
  lookup(result: 'fetched' | 'failed'): void;
}

/** A namespace whose labels changed (or that came or went), or `undefined`: the whole cache was relisted. */
export type NamespaceListener = (namespace: string | undefined) => void;

export interface NamespaceCacheOptions {
  client: KubeClient;
  logger: Logger;
  events: NamespaceCacheEvents;
  /** Bound on a direct read at admission time. */
  lookupTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Page size of the list. */
  pageSize?: number;
}

const NAMESPACES = '/api/v1/namespaces';

interface ObjectMeta {
  name?: string;
  labels?: Record<string, string>;
}

function meta(object: unknown): ObjectMeta {
  const m = (object as { metadata?: unknown } | null)?.metadata;
  return m && typeof m === 'object' ? (m as ObjectMeta) : {};
}

const labelsOf = (object: unknown): Labels => Object.freeze({ ...(meta(object).labels ?? {}) });

function sameLabels(a: Labels | undefined, b: Labels | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

export class NamespaceCache {
  private labelsByName = new Map<string, Labels>();
  private inflight = new Map<string, Promise<NamespaceLookup>>();
  private readonly listeners = new Set<NamespaceListener>();
  private readonly reflector: Reflector;
  private readonly lookupTimeoutMs: number;

  constructor(private readonly opts: NamespaceCacheOptions) {
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 1000;
    this.reflector = new Reflector({
      client: opts.client,
      logger: opts.logger,
      path: NAMESPACES,
      what: 'namespace',
      store: this.store(),
      events: opts.events,
      backoffInitialMs: opts.backoffInitialMs,
      backoffMaxMs: opts.backoffMaxMs,
      pageSize: opts.pageSize,
    });
  }

  get synced(): boolean {
    return this.reflector.synced;
  }

  /** The labels of a namespace the cache holds; undefined when it has not seen it. */
  labels(namespace: string): Labels | undefined {
    return this.labelsByName.get(namespace);
  }

  /** Calls `listener` after each change the watch or a relist brings; returns how to stop. */
  onChange(listener: NamespaceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** For a namespace the cache has not seen: one bounded read, shared by concurrent callers, remembered on success. */
  lookup(namespace: string): Promise<NamespaceLookup> {
    const known = this.labelsByName.get(namespace);
    if (known) return Promise.resolve({ labels: known });
    let pending = this.inflight.get(namespace);
    if (!pending) {
      pending = this.read(namespace).finally(() => this.inflight.delete(namespace));
      this.inflight.set(namespace, pending);
    }
    return pending;
  }

  private async read(namespace: string): Promise<NamespaceLookup> {
    try {
      const { body } = await this.opts.client.request('GET', `${NAMESPACES}/${encodeURIComponent(namespace)}`, { timeoutMs: this.lookupTimeoutMs });
      const labels = labelsOf(body);
      // The watch may have delivered a newer state while we waited; it wins.
      if (!this.labelsByName.has(namespace)) this.labelsByName.set(namespace, labels);
      this.opts.events.lookup('fetched');
      return { labels: this.labelsByName.get(namespace) ?? labels };
    } catch (err) {
      this.opts.events.lookup('failed');
      const problem = err instanceof KubeError && err.status === 404 ? `namespace ${namespace} not found` : (err as Error).message;
      this.opts.logger.warn({ namespace, err: problem }, 'namespace labels unavailable; deciding without them');
      return { labels: undefined, problem };
    }
  }

  /** Runs until stop(): list, watch, relist on 410, back off on errors. */
  run(): Promise<void> {
    return this.reflector.run();
  }

  stop(): void {
    this.reflector.stop();
  }

  private notify(namespace: string | undefined): void {
    for (const listener of this.listeners) listener(namespace);
  }

  private store(): ReflectorStore {
    return {
      replace: () => {
        const next = new Map<string, Labels>();
        return {
          add: (item: KubeObject) => {
            const name = meta(item).name;
            if (name) next.set(name, labelsOf(item));
          },
          done: () => {
            this.labelsByName = next;
            this.notify(undefined);
          },
        };
      },
      apply: (type, object) => {
        const name = meta(object).name;
        if (!name) return;
        const before = this.labelsByName.get(name);
        if (type === 'DELETED') this.labelsByName.delete(name);
        else this.labelsByName.set(name, labelsOf(object));
        if (!sameLabels(before, this.labelsByName.get(name))) this.notify(name);
      },
    };
  }
}
