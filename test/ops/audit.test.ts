/**
 * `audit` as a process against the fake API server: a few hundred pods across
 * namespaces and owners, listed in pages (continue tokens), owners resolved
 * (ReplicaSet → Deployment, Job → CronJob); and `serve --audit-interval`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { freePort, parsePrometheus, sampleValue } from '../helpers/ops.js';
import { runCli, startCli, type Started } from '../helpers/process.js';
import { CONFIG_MAP_KEY, CONFIG_MAP_SELECTOR, runAuditCommand } from '../../src/cli/audit.js';

const INJECTION = 'sidecar-injector.io/injection';
const config = compile(TEST_CONFIG_YAML);
const previous = compile(`${TEST_CONFIG_YAML}\nonConflict: deny\n`);

let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;
const running: Started[] = [];

afterAll(() => fake.stop());
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

let podCount = 0;
/** A running pod as the API server stores it, owned by `owner`. */
function pod(namespace: string, owner: { kind: string; name: string } | undefined, opts: { ask?: boolean; injectedWith?: typeof config; conflict?: boolean } = {}): V1Pod {
  let p = apiserverPod((x) => {
    podCount += 1;
    x.metadata!.name = `${owner?.name ?? 'bare'}-${podCount}`;
    x.metadata!.namespace = namespace;
    delete x.metadata!.generateName;
    if (!opts.ask) delete x.metadata!.annotations!['sidecar-injector.io/inject'];
    x.metadata!.ownerReferences = owner ? [{ apiVersion: owner.kind === 'Job' ? 'batch/v1' : 'apps/v1', kind: owner.kind, name: owner.name, uid: `uid-${owner.name}`, controller: true }] : [];
    if (opts.conflict) x.spec!.containers.push({ name: 'log-shipper', image: 'mine:1' });
    x.status = { phase: 'Running' };
  });
  if (opts.injectedWith) {
    const out = admitPod(p, { namespace, namespaceLabels: undefined, server: { nativeSidecars: true } }, opts.injectedWith);
    if (out.decision !== 'injected') throw new Error(out.reason);
    p = out.pod;
  }
  return p;
}

function owned(kind: string, namespace: string, name: string, parent?: { apiVersion: string; kind: string; name: string }) {
  const plural = kind === 'ReplicaSet' ? 'replicasets' : 'jobs';
  fake.put(plural, {
    apiVersion: kind === 'ReplicaSet' ? 'apps/v1' : 'batch/v1',
    kind,
    metadata: { name, namespace, ...(parent ? { ownerReferences: [{ ...parent, uid: `uid-${parent.name}`, controller: true }] } : {}) },
  });
}

beforeAll(async () => {
  fake = new FakeApiServer();
  await fake.start();
  dir = mkdtempSync(join(tmpdir(), 'audit-'));
  kubeconfig = fake.kubeconfig(dir);
  fake.namespace('kube-system');
  fake.namespace('shop', { [INJECTION]: 'enabled' }); // labelled after its pods started: they missed injection
  fake.namespace('batch', { [INJECTION]: 'enabled' });
  fake.namespace('quiet');
  fake.put('configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'sidecar-injector-config', namespace: 'sidecar-injector', labels: Object.fromEntries([CONFIG_MAP_SELECTOR.split('=') as [string, string]]) },
    data: { [CONFIG_MAP_KEY]: TEST_CONFIG_YAML },
  });
  owned('ReplicaSet', 'shop', 'web-7d4b9c8f6', { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' });
  owned('ReplicaSet', 'shop', 'api-5f6d7c8b9', { apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' });
  owned('Job', 'batch', 'report-29012345', { apiVersion: 'batch/v1', kind: 'CronJob', name: 'report' });
  const add = (p: V1Pod) => fake.put('pods', p as unknown as Record<string, unknown>);
  for (let i = 0; i < 300; i++) add(pod('shop', { kind: 'ReplicaSet', name: 'web-7d4b9c8f6' })); // missed (rule 7)
  for (let i = 0; i < 200; i++) add(pod('shop', { kind: 'ReplicaSet', name: 'api-5f6d7c8b9' }, { ask: true, injectedWith: config })); // fine
  for (let i = 0; i < 50; i++) add(pod('shop', { kind: 'StatefulSet', name: 'db' }, { ask: true, injectedWith: previous })); // stale
  for (let i = 0; i < 20; i++) add(pod('batch', { kind: 'Job', name: 'report-29012345' })); // missed, owned by a CronJob
  add(pod('batch', undefined, { ask: true, conflict: true })); // conflict, bare pod
  for (let i = 0; i < 400; i++) add(pod('quiet', { kind: 'ReplicaSet', name: 'other-1' })); // not wanted
  for (let i = 0; i < 30; i++) add(pod('kube-system', { kind: 'DaemonSet', name: 'kube-proxy' }, { ask: true })); // excluded
});

const audit = (args: string[]) => runCli(['audit', '--kubeconfig', kubeconfig, ...args], { env: { KUBERNETES_SERVICE_HOST: '' } });

describe('audit', () => {
  it('finds missed, stale and conflicting pods across 1,000 pods in pages, grouped by the workload to restart (table, exit 1)', async () => {
    const before = fake.requests.length;
    const out = await audit(['-A']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('config: ConfigMap sidecar-injector/sidecar-injector-config');
    const lines = out.stdout.split('\n');
    expect(lines[0]).toMatch(/^STATE\s+NAMESPACE\s+WORKLOAD\s+PODS\s+EXAMPLE\s+ACTION$/);
    const row = (re: RegExp) => lines.find((l) => re.test(l));
    expect(row(/^missed\s+batch\s+cronjob\/report\s+20\s/)).toContain('kubectl create job --from=cronjob/report -n batch');
    expect(row(/^missed\s+shop\s+deployment\/web\s+300\s/)).toContain('kubectl rollout restart deployment/web -n shop');
    expect(row(/^stale\s+shop\s+statefulset\/db\s+50\s/)).toContain('kubectl rollout restart statefulset/db -n shop');
    expect(row(/^conflict\s+batch\s+pod\/bare-\d+\s+1\s/)).toContain('resolve the conflict');
    expect(lines.some((l) => l.includes('api'))).toBe(false);
    expect(out.stdout).toContain('1001 pods: 320 missed, 50 stale, 0 orphaned, 1 conflict, 200 injected');
    const pages = fake.requests.slice(before).filter((r) => r.path === '/api/v1/pods');
    expect(pages.length).toBe(3);
    expect(pages.slice(1).every((r) => r.query.has('continue'))).toBe(true);
    // Owners are read once each, and only for pods that need attention.
    const ownerReads = fake.requests.slice(before).filter((r) => r.path.includes('/replicasets/') || r.path.includes('/jobs/'));
    expect(ownerReads.map((r) => r.path).sort()).toEqual(['/apis/apps/v1/namespaces/shop/replicasets/web-7d4b9c8f6', '/apis/batch/v1/namespaces/batch/jobs/report-29012345']);
  });

  it('-o json for scripts; -n limits the scope; a clean namespace exits 0', async () => {
    const json = await audit(['-n', 'shop', '-o', 'json']);
    expect(json.code).toBe(1);
    const body = JSON.parse(json.stdout) as { scope: string; counts: Record<string, number>; workloads: { kind: string; name: string; state: string; pods: number }[]; config: { revision: string } };
    expect(body.scope).toBe('shop');
    expect(body.config.revision).toBe(config.revision);
    expect(body.counts).toEqual({ pods: 550, missed: 300, stale: 50, orphaned: 0, conflict: 0, injected: 200 });
    expect(body.workloads.map((w) => `${w.state} ${w.kind}/${w.name} ${w.pods}`)).toEqual(['missed Deployment/web 300', 'stale StatefulSet/db 50']);
    const clean = await audit(['-n', 'quiet']);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toBe('400 pods: 0 missed, 0 stale, 0 orphaned, 0 conflict, 0 injected: nothing to do\n');
  });

  it('--config wins over the ConfigMap: pods injected under it are fine, the others stale', async () => {
    const file = join(dir, 'old.yaml');
    writeFileSync(file, `${TEST_CONFIG_YAML}\nonConflict: deny\n`);
    const out = await audit(['-n', 'shop', '--config', file, '-o', 'json']);
    expect(out.stderr).toContain(`config: ${file}`);
    const body = JSON.parse(out.stdout) as { counts: Record<string, number> };
    expect(body.counts).toMatchObject({ stale: 200, injected: 50 });
  });

  it('exit 2 with a clear message on errors', async () => {
    const none = await runCli(['audit'], { env: { KUBERNETES_SERVICE_HOST: '', KUBECONFIG: '', HOME: dir } });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no cluster');
    fake.failures.push({ pattern: /^GET \/api\/v1\/pods$/, code: 500 });
    const failed = await audit(['-A']);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/sidecar-injector audit: GET \/api\/v1\/pods\?limit=500: 500/);
    const usage = await audit(['-n', 'x', '-A']);
    expect(usage.code).toBe(2);
  });
});

describe('serve --audit-interval', () => {
  it('exports sidecar_injector_pods{state} from a periodic audit', async () => {
    const metricsPort = await freePort();
    const certs = mkdtempSync(join(tmpdir(), 'audit-certs-'));
    const proc = startCli(
      ['serve', '--kubeconfig', kubeconfig, '--dev-certs', '--tls-cert', join(certs, 'tls.crt'), '--tls-key', join(certs, 'tls.key'), '--port', '0', '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--audit-interval', '10s', '--config', join(dir, 'current.yaml'), '--no-events'],
      { KUBERNETES_SERVICE_HOST: '' },
    );
    writeFileSync(join(dir, 'current.yaml'), TEST_CONFIG_YAML);
    running.push(proc);
    await proc.waitForLog((l) => l.msg === 'audit', 20_000);
    const m = parsePrometheus(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    expect(sampleValue(m, 'sidecar_injector_pods', { state: 'missed' })).toBe(320);
    expect(sampleValue(m, 'sidecar_injector_pods', { state: 'stale' })).toBe(50);
    expect(sampleValue(m, 'sidecar_injector_pods', { state: 'conflict' })).toBe(1);
    expect(sampleValue(m, 'sidecar_injector_pods', { state: 'injected' })).toBe(200);
    expect(sampleValue(m, 'sidecar_injector_audit_runs_total', { result: 'success' })).toBe(1);
  });
});

describe('audit --diff (issue 21)', () => {
  const bumped = () => {
    const file = join(dir, 'bumped.yaml');
    writeFileSync(file, TEST_CONFIG_YAML.replace('registry.example.com/logging/agent:1.0', 'registry.example.com/logging/agent:1.1'));
    return file;
  };
  /** The unified diff printed for one workload, from its `---` line to the next workload's. */
  const section = (stdout: string, workload: string) => {
    const start = stdout.indexOf(`--- ${workload} `);
    if (start < 0) return '';
    const end = stdout.indexOf('\n--- ', start + 1);
    return stdout.slice(start, end < 0 ? undefined : end);
  };
  const changes = (text: string) => text.split('\n').filter((l) => /^[-+](?![-+]{2} )/.test(l));

  it('after an image bump: a stale workload\'s next pod changes only the image, a missed one gets the whole injection (unified diff of YAML, plain when piped)', async () => {
    const out = await audit(['-n', 'shop', '--config', bumped(), '--diff']);
    expect(out.code).toBe(1);
    const api = section(out.stdout, 'deployment/api -n shop');
    expect(changes(api)).toEqual(['-    image: registry.example.com/logging/agent:1.0', '+    image: registry.example.com/logging/agent:1.1']);
    expect(api).toMatch(/^\+\+\+ deployment\/api -n shop \(next pod\)/m);
    const web = changes(section(out.stdout, 'deployment/web -n shop'));
    expect(web).toContain('+  - name: log-shipper');
    // Nothing of the running pod goes but its empty profile list.
    expect(web.filter((l) => l.startsWith('-'))).toEqual(['-profiles: []']);
    expect(out.stdout).not.toContain('\x1b[');
  });

  it('-o json: the change as data, per workload, from one of its running pods', async () => {
    const out = await audit(['-n', 'shop', '--config', bumped(), '--diff', '-o', 'json']);
    const body = JSON.parse(out.stdout) as { workloads: { kind: string; name: string; state: string; next?: Record<string, unknown> }[] };
    const api = body.workloads.find((w) => w.name === 'api')!;
    expect(api.state).toBe('stale');
    expect(api.next).toMatchObject({ kind: 'diff', none: false, containers: { added: [], removed: [], changed: [{ name: 'log-shipper', fields: ['image'] }] }, profiles: { before: ['log-shipper'], after: ['log-shipper'] } });
    expect(String(api.next!.pod)).toMatch(/^api-5f6d7c8b9-\d+$/);
    const web = body.workloads.find((w) => w.name === 'web')!;
    expect(web.next).toMatchObject({ kind: 'diff', containers: { added: ['log-shipper'] }, volumes: { added: ['app-logs'] } });
    // Stale by a change that does not touch the pod (onConflict): its next pod is the same.
    const db = body.workloads.find((w) => w.name === 'db')!;
    expect(db.next).toMatchObject({ kind: 'diff', none: false, containers: { changed: [{ name: 'log-shipper', fields: ['image'] }] } });
  });

  it('-o json carries the values (issue 32): each changed field before and after, added parts whole; the same the table prints', async () => {
    const [json, text] = await Promise.all([audit(['-n', 'shop', '--config', bumped(), '--diff', '-o', 'json']), audit(['-n', 'shop', '--config', bumped(), '--diff'])]);
    type Next = { containers: { changed: { name: string; changes: { field: string; before?: unknown; after?: unknown }[] }[]; addedValues: { name: string; image: string }[] }; volumes: { addedValues: unknown[] }; appMounts: { container: string; addedValues: unknown[] }[] };
    const body = JSON.parse(json.stdout) as { workloads: { name: string; next?: Next }[] };
    const api = body.workloads.find((w) => w.name === 'api')!.next!;
    expect(api.containers.changed).toEqual([
      { name: 'log-shipper', fields: ['image'], changes: [{ field: 'image', before: 'registry.example.com/logging/agent:1.0', after: 'registry.example.com/logging/agent:1.1' }] },
    ]);
    // The table's unified diff for the same workload shows exactly those two values.
    const [change] = api.containers.changed[0]!.changes;
    expect(changes(section(text.stdout, 'deployment/api -n shop'))).toEqual([`-    image: ${String(change!.before)}`, `+    image: ${String(change!.after)}`]);
    // A missed workload: the whole sidecar, volume and app mount it would get.
    const web = body.workloads.find((w) => w.name === 'web')!.next!;
    expect(web.containers.addedValues).toEqual([expect.objectContaining({ name: 'log-shipper', image: 'registry.example.com/logging/agent:1.1', ports: [{ containerPort: 2020, protocol: 'TCP' }] })]);
    expect(web.volumes.addedValues).toEqual([{ name: 'app-logs', emptyDir: {} }]);
    expect(web.appMounts).toEqual([expect.objectContaining({ container: 'web', addedValues: [{ name: 'app-logs', mountPath: '/var/log/app' }] })]);
    const webTable = changes(section(text.stdout, 'deployment/web -n shop'));
    expect(webTable).toContain(`+    image: ${web.containers.addedValues[0]!.image}`);
  });

  it('coloured on a terminal, as kubectl diff is', async () => {
    let stdout = '';
    const io = { env: { KUBERNETES_SERVICE_HOST: '' }, readStdin: async () => '', out: (t: string) => void (stdout += t), err: () => undefined, outIsTerminal: true };
    const code = await runAuditCommand(['-n', 'shop', '--config', bumped(), '--diff', '--kubeconfig', kubeconfig], io);
    expect(code).toBe(1);
    expect(stdout).toContain('\x1b[31m-    image: registry.example.com/logging/agent:1.0\x1b[0m');
    expect(stdout).toContain('\x1b[32m+    image: registry.example.com/logging/agent:1.1\x1b[0m');
  });

  it('a stale workload whose next pod is the same says so; with --restart --dry-run the diff is shown too', async () => {
    const file = join(dir, 'deny.yaml');
    writeFileSync(file, `${TEST_CONFIG_YAML}\nonConflict: deny\n`);
    const out = await audit(['-n', 'shop', '--config', file, '--diff', '--restart', '--dry-run']);
    expect(out.stdout).toContain('# deployment/api -n shop: its next pod would be the same');
    expect(out.stderr).toContain('would restart');
  });
});
