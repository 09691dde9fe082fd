/**
 * A background write that converges: `sync()` asks for one run of `write`,
 * a run already going is followed by one more (newer state wins), failures
 * retry with capped exponential backoff until success or stop(). Never on
 * the admission path. Shared by the caBundle and matchConditions writers.
 */
import type { Logger } from 'pino';

export interface SyncLoopOptions {
  logger: Logger;
  /** For the retry log line: what is not written. */
  what: string;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Each failed attempt (the caller counts it). */
  onFailure(err: Error): void;
}

export class SyncLoop {
  private wanted = 0;
  private running = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private done = 0;
  private waiters: { generation: number; resolve: (ok: boolean) => void }[] = [];
  private interval: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: () => Promise<void>,
    private readonly opts: SyncLoopOptions,
  ) {}

  sync(): void {
    this.wanted += 1;
    this.wake?.();
    if (!this.running && !this.stopped) void this.loop();
  }

  /** Syncs now, then every `ms` until stopped: what is written is checked again even without a change of ours. */
  every(ms: number): void {
    this.sync();
    clearInterval(this.interval);
    this.interval = setInterval(() => this.sync(), ms);
    this.interval.unref();
  }

  stop(): void {
    clearInterval(this.interval);
    this.stopped = true;
    this.wake?.();
    for (const w of this.waiters.splice(0)) w.resolve(false);
  }

  /** Resolves true once every sync asked so far has been written, false if stopped or `boundMs` passes first. */
  settled(boundMs: number): Promise<boolean> {
    if (this.done >= this.wanted) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { generation: this.wanted, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, boundMs).unref();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    let failures = 0;
    while (!this.stopped && this.done < this.wanted) {
      const generation = this.wanted;
      try {
        await this.write();
        this.done = generation;
        failures = 0;
        for (const w of this.waiters.filter((x) => x.generation <= generation)) w.resolve(true);
        this.waiters = this.waiters.filter((x) => x.generation > generation);
      } catch (err) {
        this.opts.onFailure(err as Error);
        failures += 1;
        const initial = this.opts.backoffInitialMs ?? 1000;
        const delay = Math.min(this.opts.backoffMaxMs ?? 60_000, initial * 2 ** Math.min(failures - 1, 16));
        this.opts.logger.warn({ err: (err as Error).message, retryInMs: delay }, `${this.opts.what} not written; retrying`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
    this.running = false;
  }
}
