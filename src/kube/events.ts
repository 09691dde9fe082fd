/**
 * Writes Events (core/v1, like client-go's recorder and Linkerd's injector)
 * off the admission path. record() only updates a bounded in-memory map and
 * returns; a timer flushes it. Events with the same object, reason and
 * message aggregate into one with a count (a burst of 1,000 pods of one
 * ReplicaSet is one Event with count 1000); one seen again later is PATCHed
 * (count, lastTimestamp) instead of created anew. Writes are rate-limited by
 * a token bucket; when the map is full new keys are dropped and counted.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { PodEvent } from '../core/events.js';
import { KubeError, type KubeClient } from './client.js';

export type EventResult = 'created' | 'updated' | 'dropped' | 'failed';

export interface EventRecorderOptions {
  client: KubeClient;
  logger: Logger;
  onResult(result: EventResult): void;
  /** Distinct events waiting to be written; more are dropped. */
  maxPending?: number;
  flushIntervalMs?: number;
  /** Token bucket: writes per second and burst. */
  qps?: number;
  burst?: number;
  /** Injectable clock (ms since epoch) for timestamps. */
  now?: () => number;
}

interface Pending {
  event: PodEvent;
  count: number;
  first: number;
  last: number;
}

interface Written {
  name: string;
  count: number;
  first: number;
}

const COMPONENT = 'sidecar-injector';
const MAX_WRITTEN = 4096;

function keyOf(e: PodEvent): string {
  const o = e.involvedObject;
  return [e.namespace, o.kind, o.name, o.uid ?? '', e.reason, e.message].join('\u0000');
}

export class EventRecorder {
  private pending = new Map<string, Pending>();
  /** Events already in the API, by key, oldest first (a small LRU). */
  private written = new Map<string, Written>();
  private tokens: number;
  private lastRefill: number;
  private flushing = false;
  private sequence = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly instance = hostname();
  private readonly now: () => number;

  constructor(private readonly opts: EventRecorderOptions) {
    this.now = opts.now ?? Date.now;
    this.tokens = opts.burst ?? 25;
    this.lastRefill = this.now();
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  /** Never blocks, never throws: aggregates into the pending map or drops. */
  record(event: PodEvent): void {
    const key = keyOf(event);
    const at = this.now();
    const seen = this.pending.get(key);
    if (seen) {
      seen.count += 1;
      seen.last = at;
      return;
    }
    if (this.pending.size >= (this.opts.maxPending ?? 1000)) {
      this.opts.onResult('dropped');
      return;
    }
    this.pending.set(key, { event, count: 1, first: at, last: at });
  }

  /** Writes what the rate limit allows; the rest waits for the next tick. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      this.refill();
      // A snapshot: what arrives while we write waits for the next tick (and aggregates meanwhile).
      const batch = [...this.pending].slice(0, Math.floor(this.tokens));
      this.tokens -= batch.length;
      for (const [key] of batch) this.pending.delete(key);
      for (const [key, p] of batch) await this.write(key, p);
    } finally {
      this.flushing = false;
    }
  }

  /** Stops the timer after one last flush. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private refill(): void {
    const at = this.now();
    const burst = this.opts.burst ?? 25;
    this.tokens = Math.min(burst, this.tokens + ((at - this.lastRefill) / 1000) * (this.opts.qps ?? 10));
    this.lastRefill = at;
  }

  private async write(key: string, p: Pending): Promise<void> {
    const { event } = p;
    const base = `/api/v1/namespaces/${encodeURIComponent(event.namespace)}/events`;
    const previous = this.written.get(key);
    try {
      if (previous) {
        const count = previous.count + p.count;
        try {
          await this.opts.client.request('PATCH', `${base}/${encodeURIComponent(previous.name)}`, {
            body: { count, lastTimestamp: new Date(p.last).toISOString() },
            contentType: 'application/strategic-merge-patch+json',
            timeoutMs: 5000,
          });
          this.remember(key, { ...previous, count });
          this.opts.onResult('updated');
          return;
        } catch (err) {
          // Events expire (an hour by default): write a new one.
          if (!(err instanceof KubeError && err.status === 404)) throw err;
        }
      }
      // client-go's naming: the object's name and a nanosecond timestamp in hex (the sequence keeps one millisecond's events apart).
      const name = `${event.involvedObject.name}.${(BigInt(p.first) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`;
      await this.opts.client.request('POST', base, {
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace: event.namespace },
          involvedObject: event.involvedObject,
          reason: event.reason,
          message: event.message,
          type: event.type,
          count: p.count,
          firstTimestamp: new Date(p.first).toISOString(),
          lastTimestamp: new Date(p.last).toISOString(),
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          reportingInstance: this.instance,
        },
        timeoutMs: 5000,
      });
      this.remember(key, { name, count: p.count, first: p.first });
      this.opts.onResult('created');
    } catch (err) {
      this.opts.onResult('failed');
      this.opts.logger.warn({ err: (err as Error).message, reason: event.reason, object: `${event.involvedObject.kind}/${event.involvedObject.name}` }, 'event not written');
    }
  }

  private remember(key: string, w: Written): void {
    this.written.delete(key);
    this.written.set(key, w);
    if (this.written.size > MAX_WRITTEN) this.written.delete(this.written.keys().next().value as string);
  }
}
