/**
 * Applies a webhook's JSON patch with an engine other than the one that made
 * it: `kubectl patch --local --type=json` (Kubernetes' own patch code) when
 * kubectl is on PATH; otherwise the rfc6902 package, said out loud. Under
 * CI=true kubectl is required.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPatch } from 'rfc6902';
import type { Operation } from 'rfc6902';
import type { V1Pod } from '@kubernetes/client-node';

// PATCH_ENGINE=rfc6902: only for `npm run mutation`, which runs the core's tests once per mutant.
const forced = process.env.PATCH_ENGINE === 'rfc6902';
if (forced && process.env.CI === 'true') throw new Error('PATCH_ENGINE=rfc6902 is for mutation runs, never CI');
export const hasKubectl = !forced && spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!hasKubectl && !forced) {
  if (process.env.CI === 'true') throw new Error('kubectl is required under CI=true to apply patches (npm test builds the pinned one: scripts/tools.mjs kubectl)');
  process.stderr.write('NOTE: kubectl not on PATH: patches are applied with the rfc6902 package instead\n');
}

export const patchEngine = hasKubectl ? 'kubectl patch --local --type=json' : 'rfc6902';

export function applyJsonPatch(pod: V1Pod, ops: unknown[]): V1Pod {
  if (!hasKubectl) {
    const doc = structuredClone(pod);
    const results = applyPatch(doc, ops as Operation[]);
    const failed = results.find((r) => r !== null);
    if (failed) throw new Error(`rfc6902 could not apply the patch: ${String(failed)}`);
    return doc;
  }
  const dir = mkdtempSync(join(tmpdir(), 'patch-'));
  try {
    const file = join(dir, 'pod.json');
    writeFileSync(file, JSON.stringify(pod));
    const out = execFileSync('kubectl', ['patch', '--local', '-f', file, '--type=json', '-p', JSON.stringify(ops), '-o', 'json', '--show-managed-fields'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out) as V1Pod;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function decodePatch(base64: string): { op: string; path: string; value?: unknown }[] {
  return JSON.parse(Buffer.from(base64, 'base64').toString('utf8')) as { op: string; path: string; value?: unknown }[];
}
