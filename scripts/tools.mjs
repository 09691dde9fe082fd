#!/usr/bin/env node
// The real tools the tests run, built from the Go module proxy at the versions pinned in
// tools/*/go.mod (and test/policy-eval/go.mod), once per machine:
//
//   node scripts/tools.mjs [NAME...]        builds what is missing, prints NAME=PATH for each
//
// NAME is one of the keys of TOOLS below (default: all). KUBERNETES=1.30 picks the
// Kubernetes module tools/kubernetes-1.30 for kube-apiserver and kubectl (default: the
// newest, tools/kubernetes). Binaries go to $SIDECAR_INJECTOR_TOOLS (default
// ~/.cache/sidecar-injector-tools)/<tool>-<version>/<tool>; a binary already there is reused
// without a build. A failed build leaves nothing behind and says which command failed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CACHE = process.env.SIDECAR_INJECTOR_TOOLS || join(homedir(), '.cache', 'sidecar-injector-tools');
const KUBERNETES = process.env.KUBERNETES ? `tools/kubernetes-${process.env.KUBERNETES}` : 'tools/kubernetes';

/** The version a go.mod requires of MODULE (its `require` or `tool` line's module). */
function required(dir, module) {
  const mod = readFileSync(join(ROOT, dir, 'go.mod'), 'utf8');
  const m = new RegExp(`^\\s*(?:require\\s+)?${module.replaceAll('.', '\\.')} (v\\S+)`, 'm').exec(mod);
  if (!m) throw new Error(`${dir}/go.mod requires no version of ${module}`);
  return m[1];
}

/** What our own Go sources hash to: their cache key (a change rebuilds them). */
function sourceHash(dir) {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) h.update(readFileSync(join(ROOT, dir, f)));
  return h.digest('hex').slice(0, 16);
}

const kubeVersion = () => required(KUBERNETES, 'k8s.io/kubernetes');
// -X flags as Kubernetes' own build sets them (hack/lib/version.sh): /version and --version tell the truth.
const kubeLdflags = (v) => {
  const [major, minor] = v.slice(1).split('.');
  return [`k8s.io/component-base/version.gitVersion=${v}`, `k8s.io/component-base/version.gitMajor=${major}`, `k8s.io/component-base/version.gitMinor=${minor}`, 'k8s.io/component-base/version.gitTreeState=clean'];
};

/** name -> where its go.mod is, the package to build, the version (cache key) and -X flags. */
const TOOLS = {
  'kube-apiserver': () => ({ dir: KUBERNETES, pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', version: kubeVersion(), x: kubeLdflags(kubeVersion()) }),
  kubectl: () => ({ dir: KUBERNETES, pkg: 'k8s.io/kubernetes/cmd/kubectl', version: kubeVersion(), x: kubeLdflags(kubeVersion()) }),
  // Only its clusterrole-aggregation controller is run (test/e2e/apiserver.ts, tenant-api.e2e.ts): the
  // built-in admin, edit and view roles gain the chart's aggregated rules as in a real cluster.
  'kube-controller-manager': () => ({ dir: KUBERNETES, pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager', version: kubeVersion(), x: kubeLdflags(kubeVersion()) }),
  etcd: () => ({ dir: 'tools/etcd', pkg: 'go.etcd.io/etcd/server/v3', version: required('tools/etcd', 'go.etcd.io/etcd/server/v3'), x: [] }),
  helm: () => {
    const v = required('tools/helm', 'helm.sh/helm/v4');
    return { dir: 'tools/helm', pkg: 'helm.sh/helm/v4/cmd/helm', version: v, x: [`helm.sh/helm/v4/internal/version.version=${v}`] };
  },
  promtool: () => {
    const v = required('tools/promtool', 'github.com/prometheus/prometheus');
    return { dir: 'tools/promtool', pkg: 'github.com/prometheus/prometheus/cmd/promtool', version: v, x: [`github.com/prometheus/common/version.Version=${v}`] };
  },
  'policy-eval': () => ({ dir: 'test/policy-eval', pkg: '.', version: sourceHash('test/policy-eval'), x: [] }),
};

/** The path of NAME's binary, built first when the cache does not have it. */
export function tool(name, log = (line) => process.stderr.write(`${line}\n`)) {
  const spec = TOOLS[name];
  if (!spec) throw new Error(`unknown tool ${name} (known: ${Object.keys(TOOLS).join(', ')})`);
  const { dir, pkg, version, x } = spec();
  const home = join(CACHE, `${name}-${version}`);
  const binary = join(home, name);
  if (existsSync(binary)) return binary;

  const go = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local' } });
  if (go.status !== 0) throw new Error(`building ${name} needs Go 1.26.7 or newer on PATH (the version Prometheus's module asks for) (go env GOVERSION: ${go.error ?? go.stderr.trim()})`);
  log(`tools: building ${name} ${version} from ${dir}/go.mod with ${go.stdout.trim()} (the first time on a machine only)`);
  const started = Date.now();
  const part = `${home}.part-${process.pid}`;
  rmSync(part, { recursive: true, force: true });
  mkdirSync(part, { recursive: true });
  const args = ['build', '-trimpath', '-ldflags', ['-s', '-w', ...x.map((f) => `-X ${f}`)].join(' '), '-o', join(part, name), pkg];
  // -mod=readonly: go.sum is the pin; GOTOOLCHAIN=local: the Go on PATH builds, nothing is downloaded in its place.
  const r = spawnSync('go', args, {
    cwd: join(ROOT, dir),
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly', GOTOOLCHAIN: 'local', GOWORK: 'off' },
  });
  if (r.status !== 0) {
    rmSync(part, { recursive: true, force: true });
    throw new Error(`building ${name}: (cd ${dir} && go ${args.join(' ')}) failed${r.error ? `: ${r.error.message}` : ''}`);
  }
  try {
    renameSync(part, home);
  } catch (err) {
    // Another process built the same version meanwhile: theirs is as good as ours.
    rmSync(part, { recursive: true, force: true });
    if (!existsSync(binary)) throw err;
  }
  log(`tools: ${name} ${version} built in ${Math.round((Date.now() - started) / 1000)} s: ${binary}`);
  return binary;
}

export const toolNames = Object.keys(TOOLS);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : toolNames;
  try {
    for (const name of names) console.log(`${name}=${tool(name)}`);
  } catch (err) {
    console.error(`tools: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
