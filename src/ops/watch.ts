/**
 * Watching files the way Kubernetes mounts them. A ConfigMap or Secret
 * volume replaces its files by swapping the `..data` symlink, so a watch on
 * the file's inode would go deaf after the first update. Instead: watch the
 * parent directories (fast path) and poll (safety net), and report a change
 * only when the files' contents differ from what was last seen.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface FileWatchOptions {
  /** How often to re-read the files even without a watch event. */
  pollMs?: number;
  /** Quiet time after an event before reading, so a multi-step update lands whole. */
  debounceMs?: number;
}

export interface FileWatcher {
  close(): void;
}

async function snapshot(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(paths.map((p) => readFile(p).then((b) => b.toString('base64'), (e: NodeJS.ErrnoException) => `!${e.code}`)));
  return parts.join('\n');
}

/** Calls `onChange` (never concurrently) when any of `paths` changes content, appears or disappears. */
export async function watchFiles(paths: readonly string[], onChange: () => Promise<void>, opts: FileWatchOptions = {}): Promise<FileWatcher> {
  const pollMs = opts.pollMs ?? 1000;
  const debounceMs = opts.debounceMs ?? 100;
  let last = await snapshot(paths);
  let closed = false;
  let running = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  const check = async () => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const now = await snapshot(paths);
      if (now !== last && !closed) {
        last = now;
        await onChange();
      }
    } finally {
      running = false;
      if (again) {
        again = false;
        void check();
      }
    }
  };
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), debounceMs);
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    try {
      const w = watch(dir, soon);
      w.on('error', () => undefined); // the directory went away: polling carries on
      watchers.push(w);
    } catch {
      // Not watchable (e.g. missing yet): polling covers it.
    }
  }
  const poll = setInterval(() => void check(), pollMs);
  poll.unref();

  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
