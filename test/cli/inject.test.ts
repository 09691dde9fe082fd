import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { V1Pod } from '@kubernetes/client-node';
import { loadConfigFile } from '../../src/config/load.js';
import { mutate } from '../../src/core/mutate.js';
import { parseReview } from '../../src/core/review.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch, decodePatch } from '../helpers/patch-engine.js';
import { hasKubectl, kubectlParse } from '../helpers/kubectl-parse.js';
import { runCli } from '../helpers/process.js';

const fixture = (name: string) => new URL(`../fixtures/manifests/${name}`, import.meta.url).pathname;
const CONFIG = fixture('config.yaml');
const inject = (args: string[], input?: string) => runCli(['inject', '--config', CONFIG, ...args], { input });

if (!hasKubectl) process.stderr.write('NOTE: kubectl not on PATH: CLI output is checked with the yaml parser only\n');

describe('inject', () => {
  it('injects a Deployment and a CronJob, passes the Service and an opted-out Pod through in order (golden)', async () => {
    const out = await inject(['-f', fixture('web.yaml')]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(readFileSync(fixture('web.injected.yaml'), 'utf8'));
    const docs = parseAllDocuments(out.stdout).map((d) => d.toJS() as { kind: string });
    expect(docs.map((d) => d.kind)).toEqual(['Deployment', 'Service', 'CronJob', 'Pod']);
    // The untouched Service keeps its text, comment included.
    expect(out.stdout).toContain('  selector: { app: web }   # keeps its comment\n');
    if (hasKubectl) {
      expect(kubectlParse(out.stdout).map((d) => (d as { kind: string }).kind)).toEqual(['Deployment', 'Service', 'CronJob', 'Pod']);
    }
  });

  it('prints untouched documents byte for byte: comments, quoting, flow style, YAML 1.1 octals', async () => {
    const untouched = '# leading comment\napiVersion: v1\nkind: ConfigMap   # spaced\nmetadata: {name: a,  labels: {x: "1"}}\ndata:\n  mode: 010\n  k: \'v\'\n';
    const second = '# second\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n';
    const out = await inject(['-f', '-'], `${untouched}---\n${second}`);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${untouched}---\n${second}`);
  });

  it('gives a template the same result the webhook gives a pod created from it', async () => {
    const pod = apiserverPod();
    const out = await inject(['-f', '-', '-o', 'json'], JSON.stringify(pod));
    expect(out.code).toBe(0);
    const viaCli = JSON.parse(out.stdout) as V1Pod;

    const loaded = await loadConfigFile(CONFIG);
    if (!loaded.ok) throw new Error(loaded.errors.join());
    const review = parseReview(admissionReview(pod));
    if (!review.ok) throw new Error(review.error);
    const result = mutate(review.review, { config: loaded.compiled, namespaceLabels: () => undefined, server: { nativeSidecars: true } });
    if (!result.ok) throw new Error(result.error);
    const viaWebhook = applyJsonPatch(pod, decodePatch(result.review.response.patch!));
    expect(viaCli).toEqual(viaWebhook);
  });

  it('handles a List (JSON in, -o json out), using --namespace-label for the namespace', async () => {
    const out = await inject(['-f', fixture('list.json'), '-o', 'json', '--namespace-label', 'sidecar-injector.io/injection=enabled']);
    expect(out.code).toBe(0);
    const list = JSON.parse(out.stdout) as { kind: string; items: { kind: string; data?: unknown; spec?: { template: { spec: V1Pod['spec'] } } }[] };
    expect(list.kind).toBe('List');
    expect(list.items[0]!.data).toEqual({ b: '2', a: '1' });
    expect(Object.keys(list.items[0]!.data as object)).toEqual(['b', 'a']);
    expect(list.items[1]!.spec!.template.spec!.containers.map((c) => c.name)).toEqual(['db', 'log-shipper']);
    if (hasKubectl) expect(kubectlParse(out.stdout).map((d) => (d as { kind: string }).kind)).toEqual(['ConfigMap', 'StatefulSet']);

    const without = await inject(['-f', fixture('list.json'), '-o', 'json']);
    expect(JSON.parse(without.stdout)).toEqual(JSON.parse(readFileSync(fixture('list.json'), 'utf8')));
  });

  it("a document's own namespace wins over --namespace", async () => {
    const doc = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: kube-system\n  annotations: { sidecar-injector.io/inject: "true" }\nspec:\n  containers: [{ name: a, image: a }]\n';
    const out = await inject(['-f', '-', '--namespace', 'shop'], doc);
    expect(out.code).toBe(0);
    expect(parse(out.stdout)).toEqual(parse(doc));
    expect(out.stderr).toBe('Warning: document 1 (Pod p): sidecar injection skipped: namespace kube-system is excluded\n');
    const moved = await inject(['-f', '-', '--namespace', 'shop'], doc.replace('  namespace: kube-system\n', ''));
    expect((parse(moved.stdout) as V1Pod).spec!.containers).toHaveLength(2);
  });

  it('prints shared parts in full, never as YAML aliases', async () => {
    const doc =
      'apiVersion: v1\nkind: List\nitems:\n' +
      ['a', 'b']
        .map((n) => `- { apiVersion: v1, kind: Pod, metadata: { name: ${n}, annotations: { sidecar-injector.io/inject: "true" } }, spec: { containers: [{ name: x, image: x }, { name: y, image: y }] } }\n`)
        .join('');
    const out = await inject(['-f', '-'], doc);
    expect(out.code).toBe(0);
    expect(out.stdout).not.toMatch(/[&*]a\d/);
    const list = parse(out.stdout) as { items: V1Pod[] };
    expect(list.items.flatMap((p) => p.spec!.containers.map((c) => c.volumeMounts?.[0]?.name))).toEqual(Array(6).fill('app-logs'));
  });

  it('prints warnings to stderr as kubectl does', async () => {
    const doc = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: { sidecar-injector.io/inject: "exporter,nope" }\nspec:\n  containers: [{ name: a, image: a }]\n';
    const out = await inject(['-f', '-'], doc);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('Warning: document 1 (Pod p): unknown sidecar profile "nope" ignored\n');
    const pod = parse(out.stdout) as V1Pod;
    expect(pod.spec!.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([['exporter', 'Always']]);
  });

  it('exits 1 naming the document and what is wrong', async () => {
    const badYaml = await inject(['-f', '-'], 'kind: ConfigMap\n---\nkind: Pod\n  bad: [\n');
    expect(badYaml.code).toBe(1);
    expect(badYaml.stderr).toMatch(/^sidecar-injector inject: document 2 \(line \d+, column \d+\): invalid YAML/);
    expect(badYaml.stdout).toBe('');

    const noContainers = await inject(['-f', '-'], 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    spec: {}\n');
    expect(noContainers.code).toBe(1);
    expect(noContainers.stderr).toBe(
      'sidecar-injector inject: document 1 (Deployment web): Deployment.spec.template.spec.containers: missing or not an array\n',
    );

    const missing = await inject(['-f', '/nonexistent/deploy.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('sidecar-injector inject: cannot read /nonexistent/deploy.yaml: ENOENT\n');
  });

  it('exits 1 when the webhook would deny the pod (onConflict: deny)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'inject-'));
    writeFileSync(join(dir, 'deny.yaml'), `${readFileSync(CONFIG, 'utf8')}\nonConflict: deny\n`);
    const doc = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: { sidecar-injector.io/inject: exporter }\nspec:\n  containers: [{ name: a, image: a, ports: [{ containerPort: 8080 }] }]\n';
    const out = await runCli(['inject', '--config', join(dir, 'deny.yaml'), '-f', '-'], { input: doc });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('document 1 (Pod p): would be denied: conflict: containerPort 8080/TCP is used by both "exporter" and "a"');
  });

  it('--kube-version decides native sidecars: the newest by default, a regular container (with a warning) before 1.29', async () => {
    const doc = 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, annotations: { sidecar-injector.io/inject: exporter } }\nspec:\n  containers: [{ name: app, image: app:1 }]\n';
    const newest = await inject(['-f', '-', '-o', 'json'], doc);
    const podOf = (out: string) => JSON.parse(out) as V1Pod;
    expect(podOf(newest.stdout).spec!.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([['exporter', 'Always']]);
    const old = await inject(['-f', '-', '-o', 'json', '--kube-version', '1.28'], doc);
    expect(old.code).toBe(0);
    expect(podOf(old.stdout).spec!.initContainers).toBeUndefined();
    expect(podOf(old.stdout).spec!.containers.map((c) => c.name)).toEqual(['app', 'exporter']);
    expect(old.stderr).toContain('API server lacks native sidecars; injected as regular containers');
    const bad = await inject(['-f', '-', '--kube-version', 'latest'], doc);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--kube-version: expected a Kubernetes version such as 1.30, got "latest"');
  });

  it('refuses bad flags', async () => {
    expect((await inject(['-f', '-', '-o', 'xml'])).stderr).toContain('-o: expected yaml or json');
    expect((await inject(['-f', '-', '--namespace-label', 'novalue'])).stderr).toContain('expected k=v');
    const noFile = await inject([]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('inject needs -f FILE');
  });
});
