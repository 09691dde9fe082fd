/**
 * Renders the chart with the real Helm: v4, pinned in tools/helm/go.mod and
 * put first on PATH by the test setup (test/setup/tools.mjs). Manifests come
 * from `helm template`; NOTES.txt, which `helm template` never renders, from
 * `helm install --dry-run=client -o json` (no cluster is contacted).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CHART = fileURLToPath(new URL('../../charts/sidecar-injector', import.meta.url));
export const valuesFile = (name: string) => fileURLToPath(new URL(`./values/${name}.yaml`, import.meta.url));

export interface Rendered {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** `helm ARGS`, failing loudly when helm itself cannot be run (not on PATH). */
export function helm(args: string[]): Rendered {
  const r = spawnSync('helm', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`helm could not be run (npm test builds the pinned one: scripts/tools.mjs helm): ${r.error.message}`);
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

/** `crds`: with the chart's crds/ first, as `helm install` creates them (`helm template --include-crds`). */
export function render(values: string[] = [], opts: { notes?: boolean; name?: string; namespace?: string; crds?: boolean } = {}): Rendered {
  const args = [opts.name ?? 'sidecar-injector', CHART, '--namespace', opts.namespace ?? 'sidecar-injector', ...values.flatMap((v) => ['-f', v])];
  if (!opts.notes) return helm(['template', ...args, ...(opts.crds ? ['--include-crds'] : [])]);
  const r = helm(['install', ...args, '--dry-run=client', '-o', 'json']);
  if (!r.ok) return r;
  return { ...r, stdout: (JSON.parse(r.stdout) as { info: { notes?: string } }).info.notes ?? '' };
}
