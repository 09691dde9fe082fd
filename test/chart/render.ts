/**
 * Renders the chart the way `helm template` does, with the Go harness in
 * test/chart/render (text/template + sprig from Debian's packages, as Helm
 * uses them). Built once per test run. Without a Go toolchain the chart tests
 * fail saying what to install: there is no other engine to fall back on.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHART = fileURLToPath(new URL('../../charts/sidecar-injector', import.meta.url));
const SOURCE = fileURLToPath(new URL('./render', import.meta.url));
export const valuesFile = (name: string) => fileURLToPath(new URL(`./values/${name}.yaml`, import.meta.url));

const GO = ['/usr/lib/go-1.19/bin/go', 'go'].find((g) => spawnSync(g, ['version'], { stdio: 'ignore' }).status === 0);

let binary: string | undefined;
function harness(): string {
  if (binary) return binary;
  if (!GO || !existsSync('/usr/share/gocode/src/github.com/Masterminds/sprig')) {
    throw new Error('the chart tests need Go and sprig: apt-get install golang-1.19-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev');
  }
  const dir = mkdtempSync(join(tmpdir(), 'chart-render-'));
  const out = join(dir, 'render');
  // GOPATH mode over Debian's Go sources: no module download, no network.
  execFileSync(GO, ['build', '-o', out, '.'], {
    cwd: SOURCE,
    env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: join(dir, 'cache'), GOFLAGS: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  binary = out;
  return out;
}

export interface Rendered {
  ok: boolean;
  stdout: string;
  stderr: string;
}

export function render(values: string[] = [], opts: { notes?: boolean; name?: string; namespace?: string } = {}): Rendered {
  const args = ['-chart', CHART, '-name', opts.name ?? 'sidecar-injector', '-namespace', opts.namespace ?? 'sidecar-injector', ...values.flatMap((v) => ['-f', v])];
  if (opts.notes) args.push('-notes');
  const r = spawnSync(harness(), args, { encoding: 'utf8' });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}
