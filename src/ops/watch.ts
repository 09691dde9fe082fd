/**
 * Watching files the way Kubernetes mounts them. A ConfigMap or Secret
 * volume replaces its files by swapping the `..data` symlink, so a watch on
 * the file's inode would go deaf after the first update. Instead: watch the
 * parent directories (fast path) and poll (safety net).
 *
 * One change, one reload. A swap fires several directory events (the new
 * timestamped directory, `..data_tmp`, its rename to `..data`) and the poll
 * may read the same change again; what decides is the files' content, read
 * once per check: the callback gets the very bytes that were compared (it
 * never reads the files again, so what it loads is what was fingerprinted),
 * and it is called only for bytes unlike both the last ones it was given and
 * the ones in force (loaded at start, or the last it accepted). A file that
 * goes back to the bytes in force after a rejected change is not a reload
 * (`onRestored`). A change is acted on once two reads `debounceMs` apart
 * agree, so a file written in place is not loaded half-written.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** One file as read: its bytes, or the error code that kept it from being read. */
export type FileRead = { path: string; bytes: Buffer } | { path: string; error: string };

/** The watched files at one read. */
export interface FileSnapshot {
  files: FileRead[];
  /** sha256 over every file's bytes (or error): equal fingerprints, equal contents. */
  fingerprint: string;
}

/** One path's read in a snapshot. */
export function fileOf(snapshot: FileSnapshot, path: string): FileRead {
  return snapshot.files.find((f) => f.path === path) ?? { path, error: 'not read' };
}

/** One file's bytes, or the error code that kept it from being read (never throws). */
export function readOne(path: string): Promise<FileRead> {
  return readFile(path).then(
    (bytes): FileRead => ({ path, bytes }),
    (e: NodeJS.ErrnoException): FileRead => ({ path, error: e.code ?? e.message }),
  );
}

export async function readFiles(paths: readonly string[]): Promise<FileSnapshot> {
  const files = await Promise.all(paths.map(readOne));
  const hash = createHash('sha256');
  for (const f of files) {
    // Length-prefixed, so no two different reads hash the same input.
    const part = 'bytes' in f ? Buffer.concat([Buffer.from('+'), f.bytes]) : Buffer.from(`!${f.error}`);
    hash.update(`${part.length}:`).update(part);
  }
  return { files, fingerprint: hash.digest('hex') };
}

export interface FileWatchOptions {
  /** How often to re-read the files even without a watch event. */
  pollMs?: number;
  /** Quiet time after an event before reading, and between the two reads that must agree. */
  debounceMs?: number;
  /**
   * What the caller loaded at start. A change between that read and the
   * watch's start is reported at once; default: the files as the watch starts.
   */
  inForce?: FileSnapshot;
  /** After a rejected change, the files are back to the bytes in force: nothing to load (say so, count nothing). */
  onRestored?: () => void;
}

export interface FileWatcher {
  close(): void;
}

/**
 * Calls `onChange` (never concurrently) with the files' new contents when
 * any of `paths` changes content, appears or disappears. `onChange` says
 * whether the new contents are in force now (true) or were rejected (false:
 * the last good ones stay, and going back to them is no change).
 */
export async function watchFiles(paths: readonly string[], onChange: (files: FileSnapshot) => Promise<boolean>, opts: FileWatchOptions = {}): Promise<FileWatcher> {
  const pollMs = opts.pollMs ?? 1000;
  const debounceMs = opts.debounceMs ?? 100;
  let inForce = opts.inForce?.fingerprint ?? (await readFiles(paths)).fingerprint;
  /** The contents last handed to onChange (or in force at start): the same again is no change. */
  let seen = inForce;
  let closed = false;
  let running = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  /** The files once two reads `debounceMs` apart agree (bounded: a file rewritten without pause is taken as last read). */
  const settled = async (first: FileSnapshot): Promise<FileSnapshot> => {
    let read = first;
    for (let i = 0; i < 10 && !closed; i++) {
      await sleep(debounceMs);
      const next = await readFiles(paths);
      if (next.fingerprint === read.fingerprint) break;
      read = next;
    }
    return read;
  };

  const check = async () => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const first = await readFiles(paths);
      if (first.fingerprint === seen) return;
      const read = await settled(first);
      if (closed || read.fingerprint === seen) return;
      seen = read.fingerprint;
      if (read.fingerprint === inForce) {
        opts.onRestored?.();
        return;
      }
      if (await onChange(read)) inForce = read.fingerprint;
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
  // The files may have changed since the caller read them.
  if (opts.inForce) void check();

  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
