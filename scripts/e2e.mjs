#!/usr/bin/env node
// `npm run e2e`: the end-to-end suite needs a real kube-apiserver binary. Without one it says how to get
// one and exits 2: a suite that did not run has not passed.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const binary = process.env.KUBE_APISERVER;
try {
  if (!binary) throw new Error('unset');
  accessSync(binary, constants.X_OK);
} catch {
  console.error(
    `npm run e2e needs KUBE_APISERVER=<path to a kube-apiserver v1.36 binary>${binary ? ` (${binary} is not executable)` : ''}: build one with ../shared/tools/kube-apiserver/build.sh (docs/development.md, "End to end"), and apt-get install etcd-server`,
  );
  process.exit(2);
}
// The replicas and certgen run as the built CLI (bin/ → dist/).
const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const jest = spawnSync(process.execPath, ['--experimental-vm-modules', 'node_modules/jest/bin/jest.js', '-c', 'jest.e2e.config.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(jest.status ?? 1);
