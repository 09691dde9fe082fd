/**
 * SPEC 7: renewing the serving certificate, and replacing its CA, while two
 * replicas serve under load fails no admission. Two real `serve` processes
 * with --patch-ca-bundle against the fake API server, behind a round-robin
 * TCP proxy on loopback (each new connection goes to the next replica, as a
 * Service does). The client plays the API server: for every new connection
 * it trusts exactly the caBundle then in the webhook configuration (the API
 * server rebuilds its client when the configuration changes). The Secret's
 * files are swapped for one replica, then the other seconds later, as
 * kubelet's Secret refresh reaches pods at different times.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'node:https';
import { generateCa, issueServingCertificate, type CertificateAuthority } from '../../src/tls/generate.js';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { eventually } from '../helpers/ops.js';
import { startLoopbackService, type LoopbackService } from '../helpers/service.js';
import { startServe, stopServeProcesses, type ServeProcess } from '../helpers/serve-process.js';

const MWC = 'sidecar-injector';
const REQ = { service: 'sidecar-injector', namespace: 'ops', dev: false, days: 30 };
const SERVERNAME = 'sidecar-injector.ops.svc';

let fake: FakeApiServer;
let proxy: LoopbackService;
let proxyPort: number;
const replicas: ServeProcess[] = [];

const bundle = () =>
  Buffer.from((fake.get('mutatingwebhookconfigurations', MWC) as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString('utf8');
const casIn = (pem: string) => (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
/** The bundle holds exactly these CAs (in the canonical order, which ties in the same second break by fingerprint). */
const bundleIs = (...cas: CertificateAuthority[]) => casIn(bundle()) === cas.length && cas.every((c) => bundle().includes(c.caCert));

async function secretFiles(ca: CertificateAuthority, trust: CertificateAuthority[]) {
  const leaf = await issueServingCertificate(REQ, ca);
  return { 'ca.crt': trust.map((c) => c.caCert).join(''), 'tls.crt': leaf.cert, 'tls.key': leaf.key };
}

/** One admission on a new connection through the proxy, trusting what the webhook configuration says now. */
function admit(): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(admissionReview(apiserverPod()));
    const req = request(
      { host: '127.0.0.1', port: proxyPort, path: '/mutate', method: 'POST', ca: bundle(), servername: SERVERNAME, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Admissions from `workers` loops until stopped; every failure is kept. */
function load(workers: number) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      try {
        await admit();
        ok += 1;
      } catch (err) {
        // Every failure counts; the first few are kept with their message (a loop outliving its test must not grow without bound).
        failures.push(failures.length < 50 ? (err as Error).message : 'and more');
        if (failures.length > 10_000) running = false;
      }
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { ok, failures };
    },
  };
}

let caA: CertificateAuthority;

/** Replicas renew their Lease every second: a dead one stops counting after 3 s, a CA no one needs leaves 3 s later. */
const LEASE_SECONDS = 3;
const startReplica = (files: Record<string, string>) =>
  startServe({
    tls: files,
    args: ['--patch-ca-bundle', MWC, '--no-events', '--lease-duration', String(LEASE_SECONDS)],
    kubeconfig: (dir) => fake.kubeconfig(dir),
    env: { KUBERNETES_SERVICE_HOST: '' },
  });

/**
 * How far apart the two replicas see a Secret replaced whole (kubelet refreshes each node's copy at its
 * own time). Short in CI; `ROTATION_GAP_MS=60000` is the issue's real-cluster figure.
 */
const GAP_MS = Number(process.env.ROTATION_GAP_MS ?? 3000);

beforeAll(async () => {
  fake = new FakeApiServer();
  await fake.start();
  fake.namespace('ops');
  fake.webhookConfiguration(MWC);
  caA = await generateCa({ ...REQ, days: 365 });
  const files = await secretFiles(caA, [caA]);
  for (let i = 0; i < 2; i++) {
    replicas.push(await startReplica(files));
  }
  proxy = await startLoopbackService(() => replicas.map((r) => r.port));
  proxyPort = proxy.port;
  await eventually(async () => (casIn(bundle()) === 1 ? true : undefined), 'the first caBundle');
}, 60_000);

afterAll(async () => {
  await stopServeProcesses();
  await proxy.close();
  await fake.stop();
});

/** Swaps the Secret's files on replica 0, then on replica 1 `gapMs` later, under load; resolves when both serve the new pair. */
async function rotate(files: Record<string, string>, gapMs = 2000) {
  const reloads = (r: ServeProcess) => r.proc.lines.filter((l) => l.msg === 'certificate reloaded').length;
  const before = replicas.map(reloads);
  const traffic = load(4);
  let result: Awaited<ReturnType<typeof traffic.stop>> | undefined;
  try {
    await new Promise((r) => setTimeout(r, 500));
    replicas[0]!.tls.update(files);
    await new Promise((r) => setTimeout(r, gapMs));
    replicas[1]!.tls.update(files);
    await eventually(async () => (replicas.every((r, i) => reloads(r) > before[i]!) ? true : undefined), 'both replicas reloaded', 20_000);
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    // Always stop the load, or its loops would outlive a failed test.
    result = await traffic.stop();
  }
  if (result.failures.length > 0) {
    const relevant = (r: ServeProcess) => r.proc.lines.filter((l) => /certificate|caBundle/.test(String(l.msg))).map((l) => JSON.stringify(l));
    process.stderr.write(`replica logs:\n${replicas.map((r) => relevant(r).join('\n')).join('\n---\n')}\n`);
  }
  return result;
}

describe('certificate rotation across two replicas under load', () => {
  it('renewing the serving certificate under the same CA fails no admission', async () => {
    const { ok, failures } = await rotate(await secretFiles(caA, [caA]));
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(casIn(bundle())).toBe(1);
  }, 60_000);

  it('replacing the CA fails no admission: both CAs are trusted until no replica serves with the old one, and the next change drops it', async () => {
    const caB = await generateCa({ ...REQ, days: 365 });
    const first = await rotate(await secretFiles(caB, [caB, caA]));
    expect(first.failures).toEqual([]);
    expect(first.ok).toBeGreaterThan(20);
    expect(bundleIs(caB, caA)).toBe(true);

    // The next CA change: the trust set is C and B; A, two generations old, leaves the bundle.
    const caC = await generateCa({ ...REQ, days: 365 });
    const second = await rotate(await secretFiles(caC, [caC, caB]));
    expect(second.failures).toEqual([]);
    await eventually(async () => (bundleIs(caC, caB) ? true : undefined), 'A pruned, the replicas agreeing', 15_000);
    // Converged: neither replica writes again.
    const patches = fake.requests.filter((r) => r.method === 'PATCH').length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(fake.requests.filter((r) => r.method === 'PATCH').length).toBe(patches);
  }, 90_000);

  it(`a Secret replaced whole by one holding only a new CA, the replicas ${GAP_MS / 1000} s apart, fails no admission`, async () => {
    const caD = await generateCa({ ...REQ, days: 365 });
    const started = Date.now();
    const { ok, failures } = await rotate(await secretFiles(caD, [caD]), GAP_MS);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    process.stderr.write(`Secret replaced whole, replicas ${GAP_MS} ms apart: ${ok} admissions, ${failures.length} failed, ${Date.now() - started} ms\n`);
    // Once both serve D and nobody needs the older CAs, they leave.
    await eventually(async () => (bundleIs(caD) ? true : undefined), 'only D left', 15_000);
  }, 60_000 + 2 * GAP_MS);

  it('a replica that starts mid-rotation is not ready until its CA is trusted; killed, its Lease expires and its CA leaves', async () => {
    const caE = await generateCa({ ...REQ, days: 365 });
    const third = await startReplica(await secretFiles(caE, [caE]));
    const readyz = async () => (await fetch(`http://127.0.0.1:${third.metricsPort}/readyz`)).status;
    // Not ready while E is not in the bundle (nor for the moment the API server takes to load it); then ready.
    let notReady = 0;
    await eventually(
      async () => {
        const status = await readyz();
        if (status === 200) {
          expect(bundle()).toContain(caE.caCert);
          return true;
        }
        notReady += 1;
        return undefined;
      },
      'the third replica ready',
      15_000,
    );
    expect(notReady).toBeGreaterThan(0);
    expect(bundle()).toContain(caE.caCert);
    const trusted = await (await fetch(`http://127.0.0.1:${third.metricsPort}/metrics`)).text();
    expect(trusted).toMatch(/^sidecar_injector_ca_trusted 1$/m);
    expect(trusted).toMatch(/^sidecar_injector_ca_bundle_cas 2$/m);

    third.proc.child.kill('SIGKILL'); // no chance to delete its Lease
    await third.proc.exited;
    const killed = Date.now();
    await eventually(async () => (bundle().includes(caE.caCert) ? undefined : true), 'E gone', 20_000);
    // Not before its Lease expired.
    expect(Date.now() - killed).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000 - 1000);
  }, 60_000);
});
