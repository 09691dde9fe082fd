#!/usr/bin/env node
// `npm run e2e [-- jest args]`: the end-to-end suite against a real etcd and kube-apiserver.
// Both binaries come from scripts/tools.mjs (built from the versions pinned in tools/ the first
// time, then from the cache); KUBE_APISERVER and ETCD, when set, name others and win.
// KUBERNETES=1.30 runs the suite against the oldest pinned server instead of the newest.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, delimiter } from 'node:path';
import { tool } from './tools.mjs';

const env = { ...process.env };
try {
  for (const [variable, name] of [
    ['KUBE_APISERVER', 'kube-apiserver'],
    ['ETCD', 'etcd'],
    ['KUBE_CONTROLLER_MANAGER', 'kube-controller-manager'],
  ]) {
    if (env[variable]) accessSync(env[variable], constants.X_OK);
    else env[variable] = tool(name);
  }
  // kubectl of the same pinned line, first on PATH for the suite and what it starts.
  env.PATH = [dirname(tool('kubectl')), env.PATH].join(delimiter);
} catch (err) {
  console.error(`npm run e2e: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}
console.error(`npm run e2e: kube-apiserver ${env.KUBE_APISERVER}, etcd ${env.ETCD}`);
// The replicas and certgen run as the built CLI (bin/ → dist/).
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const jest = spawnSync(process.execPath, ['--experimental-vm-modules', 'node_modules/jest/bin/jest.js', '-c', 'jest.e2e.config.js', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env,
});
process.exit(jest.status ?? 1);
