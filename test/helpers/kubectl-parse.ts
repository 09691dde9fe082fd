/**
 * Has kubectl parse a manifest stream offline. `kubectl create --dry-run=client`
 * needs API discovery (a server), so this uses `kubectl patch --local` with an
 * empty merge patch: it decodes every document and prints it back as JSON.
 */
import { spawnSync } from 'node:child_process';

export { hasKubectl } from './patch-engine.js';

export function kubectlParse(manifests: string): unknown[] {
  const res = spawnSync('kubectl', ['patch', '--local', '-f', '-', '--type=merge', '-p', '{}', '-o', 'json'], {
    input: manifests,
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`kubectl could not parse the output: ${res.stderr}`);
  // One pretty-printed JSON object per document, back to back.
  return res.stdout
    .split(/\n(?=\{)/)
    .filter((s) => s.trim() !== '')
    .map((s) => JSON.parse(s) as unknown);
}
