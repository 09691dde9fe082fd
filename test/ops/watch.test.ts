/**
 * The file watcher (src/ops/watch.ts) with real files laid out as kubelet
 * lays out a ConfigMap or Secret volume (issue 32: one reload per change).
 * "Exactly one" without a fixed sleep: after a change is reported, a second,
 * distinguishable change is made and waited for; had the first been reported
 * twice (or the second's events replayed the first), the calls would not be
 * exactly [first, second].
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFiles, watchFiles, type FileSnapshot, type FileWatcher } from '../../src/ops/watch.js';
import { eventually, MountedVolume } from '../helpers/ops.js';

const open: FileWatcher[] = [];
afterEach(() => {
  for (const w of open.splice(0)) w.close();
});

const text = (s: FileSnapshot) => s.files.map((f) => ('bytes' in f ? f.bytes.toString() : `!${f.error}`));

/** A watch whose callback records what it was given and answers `accept` (default: in force). */
async function record(paths: string[], opts: { inForce?: FileSnapshot; accept?: (s: FileSnapshot) => boolean } = {}) {
  const calls: string[][] = [];
  let restored = 0;
  const w = await watchFiles(
    paths,
    async (s) => {
      calls.push(text(s));
      return opts.accept ? opts.accept(s) : true;
    },
    { pollMs: 200, inForce: opts.inForce, onRestored: () => void (restored += 1) },
  );
  open.push(w);
  const nth = (n: number) => eventually(async () => (calls.length >= n ? calls.slice() : undefined), `call ${n}`, 10_000);
  const restoredTimes = (n: number) => eventually(async () => (restored >= n ? restored : undefined), `restored ${n}`, 10_000);
  return { calls, nth, restoredTimes };
}

const volume = (files: Record<string, string>) => {
  const v = new MountedVolume(join(mkdtempSync(join(tmpdir(), 'watch-')), 'vol'));
  v.update(files);
  return v;
};

describe('one change, one call, with the bytes that were compared', () => {
  it('a kubelet-style ..data swap', async () => {
    const v = volume({ 'config.yaml': 'a' });
    const { nth } = await record([v.path('config.yaml')]);
    v.update({ 'config.yaml': 'b' });
    expect(await nth(1)).toEqual([['b']]);
    v.update({ 'config.yaml': 'c' });
    expect(await nth(2)).toEqual([['b'], ['c']]);
  });

  it('an in-place write through the ..data symlink (no directory event: the poll finds it)', async () => {
    const v = volume({ 'config.yaml': 'a' });
    const { nth } = await record([v.path('config.yaml')]);
    writeFileSync(v.path('config.yaml'), 'b');
    expect(await nth(1)).toEqual([['b']]);
    writeFileSync(v.path('config.yaml'), 'c');
    expect(await nth(2)).toEqual([['b'], ['c']]);
  });

  it('an in-place write of a plain file in the watched directory (directory events)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'a');
    const { nth } = await record([file]);
    writeFileSync(file, 'b');
    expect(await nth(1)).toEqual([['b']]);
    writeFileSync(file, 'c');
    expect(await nth(2)).toEqual([['b'], ['c']]);
  });

  it('a certificate and key swapped together: one call with both', async () => {
    const v = volume({ 'tls.crt': 'cert-1', 'tls.key': 'key-1' });
    const { nth } = await record([v.path('tls.crt'), v.path('tls.key')]);
    v.update({ 'tls.crt': 'cert-2', 'tls.key': 'key-2' });
    expect(await nth(1)).toEqual([['cert-2', 'key-2']]);
    v.update({ 'tls.crt': 'cert-3', 'tls.key': 'key-3' });
    expect(await nth(2)).toEqual([['cert-2', 'key-2'], ['cert-3', 'key-3']]);
  });

  it('a file that disappears and comes back is two changes, the first with its error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-'));
    mkdirSync(join(dir, 'd'));
    const file = join(dir, 'd', 'f');
    writeFileSync(file, 'a');
    const { nth } = await record([file]);
    rmSync(file);
    expect(await nth(1)).toEqual([['!ENOENT']]);
    writeFileSync(file, 'b');
    expect(await nth(2)).toEqual([['!ENOENT'], ['b']]);
  });
});

describe('what is in force decides, not the events', () => {
  it('back to the bytes in force after a rejected change is no change', async () => {
    const v = volume({ 'config.yaml': 'good' });
    const { nth, restoredTimes } = await record([v.path('config.yaml')], { accept: (s) => !text(s)[0]!.startsWith('bad') });
    v.update({ 'config.yaml': 'bad' });
    expect(await nth(1)).toEqual([['bad']]);
    v.update({ 'config.yaml': 'good' }); // what is in force: said, not loaded
    expect(await restoredTimes(1)).toBe(1);
    v.update({ 'config.yaml': 'bad again' });
    expect(await nth(2)).toEqual([['bad'], ['bad again']]);
    writeFileSync(v.path('config.yaml'), 'good'); // in place, back again
    expect(await restoredTimes(2)).toBe(2);
    v.update({ 'config.yaml': 'better' });
    expect(await nth(3)).toEqual([['bad'], ['bad again'], ['better']]);
  });

  it('a change made between the caller\'s read and the watch\'s start is reported (inForce)', async () => {
    const v = volume({ 'config.yaml': 'a' });
    const loaded = await readFiles([v.path('config.yaml')]);
    v.update({ 'config.yaml': 'b' });
    const { nth } = await record([v.path('config.yaml')], { inForce: loaded });
    expect(await nth(1)).toEqual([['b']]);
    v.update({ 'config.yaml': 'c' });
    expect(await nth(2)).toEqual([['b'], ['c']]);
  });

  it('equal bytes, equal fingerprints; a missing file differs from an empty one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-'));
    writeFileSync(join(dir, 'a'), 'x');
    writeFileSync(join(dir, 'b'), 'x');
    writeFileSync(join(dir, 'empty'), '');
    const fp = async (...names: string[]) => (await readFiles(names.map((n) => join(dir, n)))).fingerprint;
    expect(await fp('a')).toBe(await fp('b'));
    expect(await fp('empty')).not.toBe(await fp('missing'));
    expect(await fp('a', 'b')).not.toBe(await fp('a'));
  });
});
