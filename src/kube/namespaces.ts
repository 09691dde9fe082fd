/**
 * The namespace label cache behind rule 7: list, then watch from the list's
 * resourceVersion, the way client-go's reflector does (API concepts,
 * "Efficient detection of changes"). The watch asks for bookmarks, is
 * restarted from the last resourceVersion when it ends, and relists after
 * `410 Gone`. Failures back off exponentially with jitter.
 *
 * Admissions read the map synchronously. A namespace the cache has not seen
 * (created a moment ago, or before the first sync) is read directly, with a
 * short timeout, once for all the admissions that need it at that moment.
 */
import type { Logger } from 'pino';
import { KubeError, type KubeClient, type WatchEvent, type WatchHandle } from './client.js';
import { forEachPage } from './list.js';

type Labels = Readonly<Record<string, string>>;

export type NamespaceLookup = { labels: Labels } | { labels: undefined; problem: string };

export type WatchRestartReason = 'closed' | 'expired' | 'error';

export interface NamespaceCacheEvents {
  synced(synced: boolean): void;
  watchRestart(reason: WatchRestartReason): void;
  lookup(result: 'fetched' | 'failed'): void;
}

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
  resourceVersion?: string;
}

function meta(object: unknown): ObjectMeta {
  const m = (object as { metadata?: unknown } | null)?.metadata;
  return m && typeof m === 'object' ? (m as ObjectMeta) : {};
}

/** The watch ended because its resourceVersion is no longer served: relist. */
class Expired extends Error {}

export class NamespaceCache {
  private labelsByName = new Map<string, Labels>();
  private inflight = new Map<string, Promise<NamespaceLookup>>();
  private current: WatchHandle | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private hasSynced = false;
  /** The last resourceVersion seen (list, event or bookmark): where the next watch starts. */
  private resourceVersion: string | undefined;
  private readonly lookupTimeoutMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly pageSize: number;

  constructor(private readonly opts: NamespaceCacheOptions) {
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 1000;
    this.backoffInitialMs = opts.backoffInitialMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    this.pageSize = opts.pageSize ?? 500;
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /** The labels of a namespace the cache holds; undefined when it has not seen it. */
  labels(namespace: string): Labels | undefined {
    return this.labelsByName.get(namespace);
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
      const labels = Object.freeze({ ...(meta(body).labels ?? {}) });
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
  async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) {
          this.resourceVersion = await this.list();
          failures = 0;
        }
        const started = Date.now();
        await this.watchFrom(this.resourceVersion);
        if (this.stopped) break;
        this.opts.events.watchRestart('closed');
        // A server that closes every watch at once must not make us spin.
        if (Date.now() - started < 1000) await this.pause(this.backoff(++failures));
        else failures = 0;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof Expired) {
          this.opts.events.watchRestart('expired');
          this.opts.logger.info({ resourceVersion: this.resourceVersion }, 'namespace watch expired (410 Gone); relisting');
          this.resourceVersion = undefined;
          continue;
        }
        this.opts.events.watchRestart('error');
        const delay = this.backoff(++failures);
        this.opts.logger.warn({ err: (err as Error).message, retryInMs: delay }, 'namespace list/watch failed; retrying');
        await this.pause(delay);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.current?.abort();
    this.wake?.();
  }

  private backoff(failures: number): number {
    const base = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(failures - 1, 16));
    return Math.round(base * (0.5 + Math.random() / 2));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Lists every namespace page by page and replaces the map; returns the list's resourceVersion. */
  private async list(): Promise<string> {
    const next = new Map<string, Labels>();
    let resourceVersion = '';
    await forEachPage(this.opts.client, NAMESPACES, this.pageSize, (page) => {
      for (const item of page.items ?? []) {
        const m = meta(item);
        if (m.name) next.set(m.name, Object.freeze({ ...(m.labels ?? {}) }));
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    });
    this.labelsByName = next;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.opts.events.synced(true);
      this.opts.logger.info({ namespaces: next.size, resourceVersion }, 'namespace cache synced');
    }
    return resourceVersion;
  }

  private apply(event: WatchEvent): string | undefined {
    const m = meta(event.object);
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
        if (m.name) this.labelsByName.set(m.name, Object.freeze({ ...(m.labels ?? {}) }));
        return m.resourceVersion;
      case 'DELETED':
        if (m.name) this.labelsByName.delete(m.name);
        return m.resourceVersion;
      case 'BOOKMARK':
        return m.resourceVersion;
      default:
        return undefined;
    }
  }

  /** One watch from `resourceVersion` until it ends, moving this.resourceVersion along. */
  private async watchFrom(resourceVersion: string): Promise<void> {
    let failure: Error | undefined;
    // Like client-go: a server-side timeout between 5 and 10 minutes, so watches are renewed before proxies cut them.
    const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
    const handle = await this.opts.client.watch(
      NAMESPACES,
      { resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds },
      (event) => {
        if (event.type === 'ERROR') {
          const status = event.object as { code?: number; message?: string };
          failure = status.code === 410 ? new Expired(status.message ?? 'Gone') : new Error(`watch error ${status.code ?? '?'}: ${status.message ?? ''}`);
          this.current?.abort();
          return;
        }
        this.resourceVersion = this.apply(event) ?? this.resourceVersion;
      },
    );
    this.current = handle;
    // An error event before we got here, or stop() while the watch was being opened.
    if (failure || this.stopped) handle.abort();
    const err = await handle.done;
    this.current = undefined;
    if (failure) throw failure;
    if (err && !this.stopped) {
      if ((err as { statusCode?: number }).statusCode === 410) throw new Expired(err.message);
      throw err;
    }
  }
}
