/**
 * List, then watch from the list's resourceVersion: the loop of client-go's
 * reflector (tools/cache/reflector.go, ListAndWatch and watchHandler; API
 * concepts, "Efficient detection of changes"), shared by the namespace label
 * cache and the SidecarProfile index. The watch asks for bookmarks, is
 * restarted from the last resourceVersion seen when it ends, and relists
 * after `410 Gone` (reflector.go's isExpiredError). Failures back off
 * exponentially with jitter. What the objects mean is the store's business.
 */
import type { Logger } from 'pino';
import { KubeError, type KubeClient, type WatchEvent, type WatchHandle } from './client.js';
import { forEachPage } from './list.js';

export type WatchRestartReason = 'closed' | 'expired' | 'error';

export interface ReflectorEvents {
  /** Called once, true, when the first list (or the first answer that the resource is absent) is in the store. */
  synced(synced: boolean): void;
  watchRestart(reason: WatchRestartReason): void;
}

export type KubeObject = Record<string, unknown>;

/** Where a reflector's objects go. */
export interface ReflectorStore {
  /** A full list begins: every item of every page goes to `add`, then `done` makes them the store's whole content at once. A list that fails midway never reaches `done`. */
  replace(): { add(object: KubeObject): void; done(): void };
  /** One ADDED, MODIFIED or DELETED event. */
  apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject): void;
}

export interface ReflectorOptions {
  client: KubeClient;
  logger: Logger;
  /** The collection: `/api/v1/namespaces`, `/apis/GROUP/VERSION/PLURAL` (all namespaces). */
  path: string;
  /** For logs: `namespace`, `SidecarProfile`. */
  what: string;
  store: ReflectorStore;
  events: ReflectorEvents;
  /**
   * A 404 on the collection means it is not served (a CustomResourceDefinition not installed,
   * or removed): the store is emptied, which counts as synced (there is nothing), said once in the
   * log, and the list is retried with backoff, since the CRD may be installed later.
   */
  absentWhenNotFound?: boolean;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Page size of the list. */
  pageSize?: number;
}

function resourceVersionOf(object: unknown): string | undefined {
  const m = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  return typeof m?.resourceVersion === 'string' ? m.resourceVersion : undefined;
}

/** The watch ended because its resourceVersion is no longer served: relist. */
class Expired extends Error {}
/** The collection is not served (404): relist, which finds it absent or back. */
class Gone extends Error {}

export class Reflector {
  private current: WatchHandle | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private hasSynced = false;
  /** The collection answered 404 at the last list: logged once per absence. */
  private absent = false;
  /** The last resourceVersion seen (list, event or bookmark): where the next watch starts; undefined: list first. */
  private resourceVersion: string | undefined;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly pageSize: number;

  constructor(private readonly opts: ReflectorOptions) {
    this.backoffInitialMs = opts.backoffInitialMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    this.pageSize = opts.pageSize ?? 500;
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /** The resourceVersion the store is at (list, event or bookmark), as client-go's LastSyncResourceVersion; undefined before a list. */
  get lastSyncResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  /** Whether the last list found the collection not served (404). */
  get notServed(): boolean {
    return this.absent;
  }

  /** Runs until stop(): list, watch, relist on 410, back off on errors. */
  async run(): Promise<void> {
    const { what, logger } = this.opts;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) {
          const listed = await this.list();
          if (listed === undefined) {
            // Not served: nothing to watch; look again later.
            await this.pause(this.backoff(++failures));
            continue;
          }
          this.resourceVersion = listed;
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
          logger.info({ resourceVersion: this.resourceVersion }, `${what} watch expired (410 Gone); relisting`);
          this.resourceVersion = undefined;
          continue;
        }
        if (err instanceof Gone) this.resourceVersion = undefined;
        this.opts.events.watchRestart('error');
        const delay = this.backoff(++failures);
        logger.warn({ err: (err as Error).message, retryInMs: delay }, `${what} list/watch failed; retrying`);
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

  /** Lists page by page into a new store content; returns the list's resourceVersion, or undefined when the collection is not served. */
  private async list(): Promise<string | undefined> {
    const { what, logger, store } = this.opts;
    const sink = store.replace();
    let resourceVersion = '';
    let items = 0;
    try {
      await forEachPage<KubeObject>(this.opts.client, this.opts.path, this.pageSize, (page) => {
        for (const item of page.items ?? []) {
          sink.add(item);
          items += 1;
        }
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      });
    } catch (err) {
      if (!(this.opts.absentWhenNotFound && err instanceof KubeError && err.status === 404)) throw err;
      if (!this.absent) logger.warn({ path: this.opts.path, retrying: true }, `${what} is not served by the API server (its CustomResourceDefinition is not installed?): none are served until it is`);
      this.absent = true;
      this.commit(store.replace(), 0, undefined);
      return undefined;
    }
    if (this.absent) logger.info({ path: this.opts.path }, `${what} is served by the API server now`);
    this.absent = false;
    this.commit(sink, items, resourceVersion);
    return resourceVersion;
  }

  /** The list becomes the store's content; `synced` is already true for whoever the store tells. */
  private commit(sink: { done(): void }, items: number, resourceVersion: string | undefined): void {
    const first = !this.hasSynced;
    this.hasSynced = true;
    sink.done();
    if (!first) return;
    this.opts.events.synced(true);
    this.opts.logger.info({ items, resourceVersion }, `${this.opts.what} cache synced`);
  }

  /** One watch from `resourceVersion` until it ends, moving this.resourceVersion along. */
  private async watchFrom(resourceVersion: string): Promise<void> {
    let failure: Error | undefined;
    // Like client-go: a server-side timeout between 5 and 10 minutes, so watches are renewed before proxies cut them.
    const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
    const handle = await this.opts.client.watch(this.opts.path, { resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds }, (event: WatchEvent) => {
      if (event.type === 'ERROR') {
        const status = event.object as { code?: number; message?: string };
        failure = status.code === 410 ? new Expired(status.message ?? 'Gone') : new Error(`watch error ${status.code ?? '?'}: ${status.message ?? ''}`);
        this.current?.abort();
        return;
      }
      if (failure) return;
      if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') this.opts.store.apply(event.type, event.object);
      else if (event.type !== 'BOOKMARK') return;
      this.resourceVersion = resourceVersionOf(event.object) ?? this.resourceVersion;
    });
    this.current = handle;
    // An error event before we got here, or stop() while the watch was being opened.
    if (failure || this.stopped) handle.abort();
    const err = await handle.done;
    this.current = undefined;
    if (failure) throw failure;
    if (err && !this.stopped) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code === 410) throw new Expired(err.message);
      if (code === 404 && this.opts.absentWhenNotFound) throw new Gone(`${this.opts.what} watch: 404 ${err.message}`);
      throw err;
    }
  }
}
