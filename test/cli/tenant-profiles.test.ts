/** `inject --profiles` and `validate-config` with SidecarProfile files (SPEC 9): the built CLI, real files. */
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runCli } from '../helpers/process.js';

const example = (name: string) => new URL(`../../examples/tenant-profiles/${name}`, import.meta.url).pathname;
const CONFIG = example('injector-config.yaml');
const dir = mkdtempSync(join(tmpdir(), 'tenant-cli-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const POD = `apiVersion: v1
kind: Pod
metadata: { name: p, annotations: { sidecar-injector.io/inject: db-proxy } }
spec: { containers: [{ name: app, image: registry.example.com/shop/app:1 }] }
`;
const SERVED = ['--namespace-label', 'sidecar-injector.io/tenant-profiles=enabled'];

describe('inject --profiles', () => {
  it('a profile of the pod namespace is injected; of another namespace, never', async () => {
    const pod = file('pod.yaml', POD);
    const inShop = await runCli(['inject', '-f', pod, '--config', CONFIG, '-n', 'shop', ...SERVED, '--profiles', example('db-proxy.yaml')]);
    expect(inShop.code).toBe(0);
    expect(inShop.stderr).toBe('');
    expect((parse(inShop.stdout) as { spec: { initContainers: { name: string }[] } }).spec.initContainers.map((c) => c.name)).toEqual(['db-proxy']);

    const elsewhere = await runCli(['inject', '-f', pod, '--config', CONFIG, '-n', 'billing', ...SERVED, '--profiles', example('db-proxy.yaml')]);
    expect(elsewhere.code).toBe(0);
    expect(elsewhere.stderr).toContain('Warning: document 1 (Pod p): unknown sidecar profile "db-proxy" ignored');
    expect(elsewhere.stdout).toBe(POD);
  });

  it('a profile outside the limits is not injected, and the warning names it and the reason', async () => {
    const refused = file('refused.yaml', (await import('node:fs')).readFileSync(example('refused.yaml'), 'utf8').replace('debug-tools\n  namespace', 'db-proxy\n  namespace'));
    const out = await runCli(['inject', '-f', file('pod2.yaml', POD), '--config', CONFIG, '-n', 'shop', ...SERVED, '--profiles', refused]);
    expect(out.code).toBe(0);
    expect(out.stderr).toMatch(/^Warning: document 1 \(Pod p\): sidecar profile shop\/db-proxy not injected \(OutsideLimits\): spec\.containers\[0\]\.image/m);
  });

  it('a profiles file with something else in it is an error that says where', async () => {
    const bad = file('bad.yaml', `${(await import('node:fs')).readFileSync(example('db-proxy.yaml'), 'utf8')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n`);
    const out = await runCli(['inject', '-f', file('pod3.yaml', POD), '--config', CONFIG, '--profiles', bad]);
    expect(out.code).toBe(1);
    expect(out.stderr).toBe(`sidecar-injector inject: invalid --profiles:\n  ${bad}: document 2: not a SidecarProfile\n`);
  });
});

describe('validate-config with SidecarProfile files', () => {
  it('a spec that is not a profile is Invalid, with its path', async () => {
    const invalid = file('invalid.yaml', 'apiVersion: sidecar-injector.io/v1alpha1\nkind: SidecarProfile\nmetadata: { name: x, namespace: shop }\nspec: { containers: [{ name: x }] }\n');
    const out = await runCli(['validate-config', '--config', CONFIG, invalid]);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^shop\/x: Invalid: spec\.containers\[0\]\.image: /);
  });

  it('against a config that does not enable tenant profiles: judged anyway, and told', async () => {
    const out = await runCli(['validate-config', example('db-proxy.yaml')]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('shop/db-proxy: accepted\n');
    expect(out.stderr).toContain('tenantProfiles.enabled is false');
  });
});
