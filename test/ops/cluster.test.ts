/**
 * `serve` as a real process with a cluster: a fake API server (test/fake-apiserver)
 * in this process, the server reaching it through --kubeconfig and client-node,
 * loaded the lean way (src/kube/lean-import-hook.ts) as in production.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { request } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa, generateCertificates, issueServingCertificate, type CertificateSet } from '../../src/tls/generate.js';
import { FakeApiServer, type FakeOptions } from '../fake-apiserver/server.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { TEST_CONFIG_YAML } from '../helpers/configs.js';
import { eventually, parsePrometheus, sampleValue } from '../helpers/ops.js';
import { runCli } from '../helpers/process.js';
import { startServe, stopServeProcesses, type ServeProcess } from '../helpers/serve-process.js';
import { decodePatch } from '../helpers/patch-engine.js';

const INJECTION = 'sidecar-injector.io/injection';
const MWC_NAME = 'sidecar-injector';

const fakes: FakeApiServer[] = [];
afterEach(async () => {
  await stopServeProcesses();
  for (const f of fakes.splice(0)) await f.stop();
});

const pairs: CertificateSet[] = [];
async function certificatePair(i: number): Promise<CertificateSet> {
  while (pairs.length <= i) pairs.push(await generateCertificates({ service: 'sidecar-injector', namespace: 'ops', dev: true, days: 1 }));
  return pairs[i]!;
}
const tlsFiles = (p: CertificateSet) => ({ 'tls.crt': p.cert, 'tls.key': p.key, 'ca.crt': p.caCert });

async function startFakeCluster(opts: FakeOptions = {}): Promise<FakeApiServer> {
  const fake = new FakeApiServer(opts);
  await fake.start();
  fakes.push(fake);
  fake.namespace('default');
  fake.namespace('kube-system');
  fake.webhookConfiguration(MWC_NAME);
  return fake;
}

interface Server extends ServeProcess {
  ca: string;
}

async function startServer(fake: FakeApiServer | undefined, args: string[] = [], opts: { config?: string; waitReady?: boolean; pair?: number } = {}): Promise<Server> {
  const first = await certificatePair(opts.pair ?? 0);
  const started = await startServe({
    tls: tlsFiles(first),
    config: opts.config,
    args,
    kubeconfig: fake ? (dir) => fake.kubeconfig(dir) : undefined,
    env: { KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '' },
  });
  const s = { ...started, ca: first.caCert };
  if (opts.waitReady !== false) await eventually(async () => ((await readyz(s)).status === 200 ? true : undefined), 'readiness');
  return s;
}

const readyz = async (s: Server) => {
  const res = await fetch(`http://127.0.0.1:${s.metricsPort}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string } };
};
const scrape = async (s: Server) => parsePrometheus(await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text());

interface Review {
  response: { allowed: boolean; patch?: string; warnings?: string[]; auditAnnotations?: Record<string, string> };
}
function admit(s: Server, pod = apiserverPod(), namespace = 'shop'): Promise<Review> {
  const body = JSON.stringify(admissionReview({ ...pod, metadata: { ...pod.metadata, namespace } }, { namespace }));
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', servername: 'localhost', port: s.port, path: '/mutate', method: 'POST', ca: [s.ca, ...pairs.map((p) => p.caCert)], headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(JSON.parse(text) as Review));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A pod that says nothing itself: only the namespace (rule 7) can get it injected. */
const quietPod = () =>
  apiserverPod((p) => {
    delete p.metadata!.annotations!['sidecar-injector.io/inject'];
  });

describe('serve without a cluster', () => {
  it('says once that cluster features are off', async () => {
    const s = await startServer(undefined);
    const line = s.proc.lines.find((l) => String(l.msg).startsWith('no cluster access'));
    expect(line?.level).toBe(30);
    expect(s.proc.lines.filter((l) => String(l.msg).startsWith('no cluster access')).length).toBe(1);
    expect((await admit(s, quietPod())).response.auditAnnotations?.decision).toBe('skipped');
  });

  it('refuses --patch-ca-bundle without a cluster, and a kubeconfig it cannot read, naming the problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'c-'));
    const base = ['serve', '--port', '0', '--metrics-port', '0', '--dev-certs', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key')];
    const env = { KUBERNETES_SERVICE_HOST: '' };
    const a = await runCli([...base, '--patch-ca-bundle', 'x'], { env });
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('--patch-ca-bundle needs cluster access');
    const b = await runCli([...base, '--kubeconfig', '/nonexistent/kubeconfig'], { env });
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('cannot load kubeconfig /nonexistent/kubeconfig');
  });
});

describe('serve with a cluster', () => {
  it('is not ready until the namespace cache has synced; decides by namespace labels from then on', async () => {
    const fake = await startFakeCluster();
    fake.namespace('shop', { [INJECTION]: 'enabled' });
    fake.delays.push({ pattern: /^GET \/api\/v1\/namespaces$/, ms: 1500 });
    const s = await startServer(fake, [], { waitReady: false });
    const before = await readyz(s);
    expect(before).toEqual({ status: 503, body: { status: 'namespace cache not synced' } });
    expect(sampleValue(await scrape(s), 'sidecar_injector_namespace_cache_synced')).toBe(0);
    // Before the sync a pod's namespace is read directly.
    const early = await admit(s, quietPod(), 'shop');
    expect(early.response.auditAnnotations).toMatchObject({ decision: 'injected' });
    expect(fake.requests.some((r) => r.path === '/api/v1/namespaces/shop')).toBe(true);

    await eventually(async () => ((await readyz(s)).status === 200 ? true : undefined), 'readiness after sync');
    expect(sampleValue(await scrape(s), 'sidecar_injector_namespace_cache_synced')).toBe(1);

    fake.namespace('later', { [INJECTION]: 'enabled' });
    await eventually(async () => ((await admit(s, quietPod(), 'later')).response.auditAnnotations?.decision === 'injected' ? true : undefined), 'a namespace created after start', 5000);
    fake.namespace('shop', { [INJECTION]: 'disabled' });
    await eventually(async () => ((await admit(s, quietPod(), 'shop')).response.auditAnnotations?.decision === 'skipped' ? true : undefined), 'a relabel in force', 5000);
    // A namespace is read directly at most once (when a pod beats the watch event to us); then the cache answers.
    await admit(s, quietPod(), 'later');
    expect(fake.requests.filter((r) => r.path === '/api/v1/namespaces/later').length).toBeLessThanOrEqual(1);
  });

  it('keeps the watch through a dropped stream and an API server restart with 410, and counts the restarts', async () => {
    const fake = await startFakeCluster();
    const s = await startServer(fake);
    fake.dropWatches();
    fake.namespace('after-drop', { [INJECTION]: 'enabled' });
    await eventually(async () => ((await admit(s, quietPod(), 'after-drop')).response.auditAnnotations?.decision === 'injected' ? true : undefined), 'after the drop');
    await fake.stop();
    fake.namespace('after-restart', { [INJECTION]: 'enabled' });
    fake.compact();
    await fake.start(fake.port);
    await eventually(async () => (sampleValue(await scrape(s), 'sidecar_injector_namespace_watch_restarts_total', { reason: 'expired' })! >= 1 ? true : undefined), 'a relist', 10_000);
    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_namespace_watch_restarts_total', { reason: 'error' })).toBeGreaterThanOrEqual(1);
    expect((await admit(s, quietPod(), 'after-restart')).response.auditAnnotations?.decision).toBe('injected');
    await admit(s, quietPod(), 'after-restart');
    expect(fake.requests.filter((r) => r.path === '/api/v1/namespaces/after-restart').length).toBeLessThanOrEqual(1);
    expect((await readyz(s)).status).toBe(200);
  });

  it('--patch-ca-bundle: written at start, rewritten after a certificate rotation (both CAs, then the old one retired), not rewritten when equal', async () => {
    const fake = await startFakeCluster();
    const s = await startServer(fake, ['--patch-ca-bundle', MWC_NAME, '--lease-duration', '3']);
    const bundle = () => (fake.get('mutatingwebhookconfigurations', MWC_NAME) as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]!.clientConfig.caBundle;
    // The caBundle writes (a replica's probe webhook comes and goes in PATCHes of its own: ca-bundle.ts).
    const patches = () =>
      fake.requests.filter((r) => r.method === 'PATCH' && (r.body as { op: string; path: string }[]).some((o) => o.op === 'add' && o.path.endsWith('/clientConfig/caBundle'))).length;
    await eventually(async () => (bundle() ? true : undefined), 'the first write');
    const first = (await certificatePair(0)).caCert;
    expect(bundle()).toBe(Buffer.from(first).toString('base64'));
    expect(patches()).toBe(1);

    const rotated = await certificatePair(1);
    s.tls.update(tlsFiles(rotated));
    const holds = (...cas: string[]) => Buffer.from(bundle() ?? '', 'base64').toString().length === cas.join('').length && cas.every((c) => Buffer.from(bundle() ?? '', 'base64').toString().includes(c));
    // Trust before serve: both CAs while the old certificate is still served; the old one leaves once no one needs it.
    await eventually(async () => (holds(rotated.caCert, first) ? true : undefined), 'both CAs');
    await eventually(async () => (holds(rotated.caCert) ? true : undefined), 'the old CA retired', 15_000);
    const settled = patches();
    await new Promise((r) => setTimeout(r, 2500)); // two renewals: a converged bundle is not written again
    expect(patches()).toBe(settled);

    // A second replica mounting the same Secret reads the configuration and leaves it alone.
    const replica = await startServer(fake, ['--patch-ca-bundle', MWC_NAME, '--lease-duration', '3'], { pair: 1 });
    await eventually(async () => (sampleValue(await scrape(replica), 'sidecar_injector_ca_bundle_writes_total', { result: 'unchanged' })! >= 1 ? true : undefined), 'the replica check');
    expect(patches()).toBe(settled);
    expect(bundle()).toBe(Buffer.from(rotated.caCert).toString('base64'));
  });
});

const AUTO_CONFIG = `
policy: opt-in
defaultProfiles: [agent]
profiles:
  agent:
    nativeSidecar: auto
    containers:
      - name: agent
        image: registry.example.com/agent:1.0
`;

describe('nativeSidecar: auto, decided by the API server', () => {
  const injectedAs = async (opts: FakeOptions, args: string[] = []) => {
    const fake = await startFakeCluster(opts);
    const s = await startServer(fake, args, { config: AUTO_CONFIG });
    const review = await admit(s, apiserverPod());
    return decodePatch(review.response.patch!).map((op) => op.path);
  };

  it('a 1.30 server gets a native sidecar; a 1.28 vendor build a regular container', async () => {
    expect(await injectedAs({ version: { gitVersion: 'v1.30.2', major: '1', minor: '30' } })).toContain('/spec/initContainers');
    const old = await injectedAs({ version: { gitVersion: 'v1.28.9-eks-036c24b', major: '1', minor: '28+' } });
    expect(old).not.toContain('/spec/initContainers');
    expect(old).toContain('/spec/containers/1');
  });

  it('--kube-version overrides the probe', async () => {
    expect(await injectedAs({ version: { gitVersion: 'v1.31.0', major: '1', minor: '31' } }, ['--kube-version', '1.27'])).not.toContain('/spec/initContainers');
  });
});

describe('matchConditions (--webhook-config)', () => {
  const conditions = (fake: FakeApiServer) =>
    (fake.get('mutatingwebhookconfigurations', MWC_NAME) as { webhooks: { matchConditions?: { name: string; expression: string }[] }[] }).webhooks[1]!.matchConditions;

  it('written at start from the config in force, and kept in step when the config is reloaded', async () => {
    const fake = await startFakeCluster();
    const s = await startServer(fake, ['--webhook-config', MWC_NAME]);
    await eventually(async () => conditions(fake), 'the conditions');
    expect(conditions(fake)!.map((c) => c.name)).toEqual(['sidecar-injector-asked']);
    expect(conditions(fake)![0]!.expression).toContain('"sidecar-injector.io/inject"');
    // A wider scope (alwaysInjectSelector): the conditions follow it.
    s.config.update({ 'config.yaml': `alwaysInjectSelector: [{ matchLabels: { tier: logging } }]\n${TEST_CONFIG_YAML}` });
    await eventually(async () => (conditions(fake)?.[0]?.expression.includes('"tier"') ? true : undefined), 'the new conditions');
    // opt-out: every pod must be sent, so they go.
    s.config.update({ 'config.yaml': `policy: opt-out\n${TEST_CONFIG_YAML.replace('policy: opt-in', '')}` });
    await eventually(async () => (conditions(fake) === undefined ? true : undefined), 'no conditions');
    expect(sampleValue(await scrape(s), 'sidecar_injector_match_conditions_writes_total', { result: 'patched' })).toBe(3);
  });

  it('a 1.27 server has none: nothing is written', async () => {
    const fake = await startFakeCluster({ version: { gitVersion: 'v1.27.9', major: '1', minor: '27' } });
    const s = await startServer(fake, ['--webhook-config', MWC_NAME]);
    await s.proc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('the API server has no webhook matchConditions'));
    expect(conditions(fake)).toBeUndefined();
    expect(fake.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
  });
});

describe('events', () => {
  it('records Injected on the ReplicaSet; a burst of 1,000 admissions is answered without waiting on the writes', async () => {
    const fake = await startFakeCluster();
    fake.namespace('shop');
    // The API server holds every event write until all admissions are answered: none may wait on one.
    let release!: () => void;
    fake.holds.push({ pattern: /^(POST|PATCH) \/api\/v1\/namespaces\/shop\/events/, until: new Promise<void>((r) => (release = r)) });
    const s = await startServer(fake);
    const answers = await Promise.all(Array.from({ length: 1000 }, () => admit(s)));
    expect(answers.every((a) => a.response.auditAnnotations?.decision === 'injected')).toBe(true);
    expect(fake.all('events').length).toBe(0);
    release();
    await eventually(async () => (fake.all('events').length > 0 ? true : undefined), 'the event', 10_000);
    const event = fake.all('events')[0] as { reason: string; involvedObject: { kind: string }; count: number };
    expect(event.reason).toBe('Injected');
    expect(event.involvedObject.kind).toBe('ReplicaSet');
    // Aggregated: a few writes, not a thousand.
    await eventually(async () => (sampleValue(await scrape(s), 'sidecar_injector_events_total', { result: 'updated' })! + sampleValue(await scrape(s), 'sidecar_injector_events_total', { result: 'created' })! >= 1 ? true : undefined), 'the counters');
    expect(fake.requests.filter((r) => r.path.endsWith('/events') || r.path.includes('/events/')).length).toBeLessThan(10);
    // Bounded by count, not time: a process start and 1,000 TLS admissions take over 30 s on a loaded two-core
    // machine (seen while Go builds ran beside it). An admission that waited on a held write would never end.
  }, 120_000);

  it('--no-events writes none', async () => {
    const fake = await startFakeCluster();
    const s = await startServer(fake, ['--no-events']);
    await admit(s);
    await new Promise((r) => setTimeout(r, 1500));
    expect(fake.all('events')).toEqual([]);
  });
});

describe('certs --secret (the chart certgen hook)', () => {
  it('creates the Secret once; a second run leaves it (same CA); an incomplete one is refused by name', async () => {
    const fake = await startFakeCluster();
    fake.namespace('ops');
    const dir = mkdtempSync(join(tmpdir(), 'certgen-'));
    const kubeconfig = fake.kubeconfig(dir);
    const certs = (secret: string) => runCli(['certs', '--service', 'sidecar-injector', '--namespace', 'ops', '--secret', secret, '--kubeconfig', kubeconfig], { env: { KUBERNETES_SERVICE_HOST: '' } });

    const first = await certs('sidecar-injector-tls');
    expect(first.stderr).toContain('created Secret ops/sidecar-injector-tls');
    expect(first.code).toBe(0);
    const stored = fake.get('secrets', 'ops/sidecar-injector-tls') as { type: string; data: Record<string, string> };
    expect(stored.type).toBe('kubernetes.io/tls');
    expect(Object.keys(stored.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(first.stdout.trim()).toBe(stored.data['ca.crt']);

    const again = await certs('sidecar-injector-tls');
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('exists; left as it is');
    expect(again.stdout.trim()).toBe(stored.data['ca.crt']);
    // The serving Secret and the CA's, whose key the replicas never mount.
    expect(fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/secrets')).length).toBe(2);
    const ca = fake.get('secrets', 'ops/sidecar-injector-tls-ca') as { data: Record<string, string> };
    expect(Object.keys(ca.data).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(ca.data['ca.crt']).toBe(stored.data['ca.crt']);

    fake.put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'partial', namespace: 'ops' }, data: { 'tls.crt': 'eA==' } });
    const partial = await certs('partial');
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain('Secret ops/partial exists but lacks ca.crt, tls.key');
  });

  describe('--renew-before', () => {
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const unb64 = (t: string) => Buffer.from(t, 'base64').toString('utf8');
    async function setup(opts: { days: number; caDays?: number; service?: string; keepCa: boolean }) {
      const fake = await startFakeCluster();
      fake.namespace('ops');
      const kubeconfig = fake.kubeconfig(mkdtempSync(join(tmpdir(), 'renew-')));
      const req = { service: opts.service ?? 'sidecar-injector', namespace: 'ops', dev: false };
      const ca = await generateCa({ ...req, days: opts.caDays ?? opts.days });
      const set = { ...ca, ...(await issueServingCertificate({ ...req, days: opts.days }, ca)) };
      fake.put('secrets', { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'tls', namespace: 'ops' }, data: { 'ca.crt': b64(set.caCert), 'tls.crt': b64(set.cert), 'tls.key': b64(set.key) } });
      if (opts.keepCa) fake.put('secrets', { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'tls-ca', namespace: 'ops' }, data: { 'ca.crt': b64(set.caCert), 'ca.key': b64(set.caKey) } });
      const run = () =>
        runCli(['certs', '--service', 'sidecar-injector', '--namespace', 'ops', '--secret', 'tls', '--renew-before', '720h', '--days', '365', '--kubeconfig', kubeconfig], { env: { KUBERNETES_SERVICE_HOST: '' } });
      const secret = () => (fake.get('secrets', 'ops/tls') as { data: Record<string, string> }).data;
      return { fake, set, run, secret };
    }
    const x509 = async (pem: string) => new (await import('node:crypto')).X509Certificate(pem);

    it('not due: left as it is', async () => {
      const s = await setup({ days: 365, keepCa: true });
      const out = await s.run();
      expect(out.code).toBe(0);
      expect(out.stderr).toContain('not due for renewal');
      expect(unb64(s.secret()['tls.crt']!)).toBe(s.set.cert);
      expect(s.fake.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
    });

    it('due (expires within the window): a new serving certificate under the same CA; the caBundle does not change', async () => {
      const s = await setup({ days: 10, caDays: 3650, keepCa: true });
      const out = await s.run();
      expect(out.code).toBe(0);
      expect(out.stderr).toMatch(/renewed Secret ops\/tls: the serving certificate expires in \d+ days; same CA/);
      const renewed = await x509(unb64(s.secret()['tls.crt']!));
      expect(unb64(s.secret()['ca.crt']!)).toBe(s.set.caCert);
      expect(out.stdout.trim()).toBe(b64(s.set.caCert));
      expect(renewed.checkIssued(await x509(s.set.caCert))).toBe(true);
      expect(Math.round((new Date(renewed.validTo).getTime() - Date.now()) / 86_400_000)).toBe(365);
    });

    it('the names no longer match the Service: renewed, same CA', async () => {
      const s = await setup({ days: 365, service: 'old-name', keepCa: true });
      const out = await s.run();
      expect(out.stderr).toContain('its names lack sidecar-injector, sidecar-injector.ops');
      expect((await x509(unb64(s.secret()['tls.crt']!))).subjectAltName).toContain('DNS:sidecar-injector.ops.svc');
      expect(unb64(s.secret()['ca.crt']!)).toBe(s.set.caCert);
    });

    it('a leaf never outlives its CA', async () => {
      const s = await setup({ days: 10, caDays: 40, keepCa: true });
      expect((await s.run()).code).toBe(0);
      // The CA expires after the 30-day window, so it is kept; the new leaf stops where the CA stops.
      const renewed = await x509(unb64(s.secret()['tls.crt']!));
      expect(new Date(renewed.validTo).getTime()).toBeLessThanOrEqual(new Date((await x509(s.set.caCert)).validTo).getTime());
    });

    it('no CA key kept (an install from before renewal): a new CA, and ca.crt carries the old one for the overlap', async () => {
      const s = await setup({ days: 10, keepCa: false });
      const out = await s.run();
      expect(out.stderr).toContain('no CA key kept: a new CA');
      const trust = unb64(s.secret()['ca.crt']!);
      const blocks = trust.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
      expect(blocks).toHaveLength(2);
      expect(trust.endsWith(s.set.caCert)).toBe(true);
      const newCa = unb64((s.fake.get('secrets', 'ops/tls-ca') as { data: Record<string, string> }).data['ca.crt']!);
      expect(trust.startsWith(newCa)).toBe(true);
      expect((await x509(unb64(s.secret()['tls.crt']!))).checkIssued(await x509(newCa))).toBe(true);
    });
  });
});

