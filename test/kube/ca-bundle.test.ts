import { afterEach, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caBundlePatch, CaBundleWriter, type CaBundleResult } from '../../src/kube/ca-bundle.js';
import { ReplicaLease } from '../../src/kube/replica-lease.js';
import { generateCertificates } from '../../src/tls/generate.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { quietLogger, startFake, until } from './helpers.js';

const NAME = 'sidecar-injector';

let fake: FakeApiServer | undefined;
const writers: CaBundleWriter[] = [];
afterEach(async () => {
  for (const w of writers.splice(0)) w.stop();
  await fake?.stop();
  fake = undefined;
});

function webhookConfiguration(caBundle?: string) {
  const hook = (name: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    reinvocationPolicy: 'IfNeeded',
    clientConfig: { service: { name: NAME, namespace: 'sidecar-injector', path: '/mutate', port: 443 }, ...(caBundle ? { caBundle } : {}) },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: NAME, labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
    webhooks: [hook('pods.sidecar-injector.io'), hook('pods-opt-out.sidecar-injector.io')],
  };
}

async function setup() {
  const started = await startFake();
  fake = started.fake;
  fake.put('mutatingwebhookconfigurations', webhookConfiguration());
  const certs = await generateCertificates({ service: NAME, namespace: 'sidecar-injector', dev: false, days: 1 });
  const caPath = join(started.dir, 'ca.crt');
  writeFileSync(caPath, certs.caCert);
  const results: CaBundleResult[] = [];
  let replicas = 0;
  /** A replica's writer with its own Lease (no Lease: the fallback that removes nothing but expired CAs). */
  const writer = (opts: { lease?: boolean; caPath?: string; retireAfterMs?: number } = {}) => {
    const identity = { name: `replica-${(replicas += 1)}`, namespace: 'sidecar-injector' };
    const lease = opts.lease === false ? undefined : new ReplicaLease({ client: started.client, identity, webhookConfiguration: NAME, durationSeconds: 15 });
    const w = new CaBundleWriter({
      client: started.client,
      name: NAME,
      caPath: opts.caPath ?? caPath,
      lease,
      retireAfterMs: opts.retireAfterMs ?? 0,
      logger: quietLogger,
      onResult: (r) => results.push(r),
      backoffInitialMs: 50,
      backoffMaxMs: 100,
    });
    writers.push(w);
    return w;
  };
  return { fake: started.fake, caPath, results, writer, ca: certs.caCert };
}

const stored = (f: FakeApiServer) => f.get('mutatingwebhookconfigurations', NAME) as ReturnType<typeof webhookConfiguration>;
const patches = (f: FakeApiServer) => f.requests.filter((r) => r.method === 'PATCH');

describe('caBundlePatch', () => {
  it('adds the CA only where it differs, each guarded by a test of the webhook name', () => {
    const hooks = [{ name: 'a', clientConfig: { caBundle: 'NEW' } }, { name: 'b', clientConfig: { caBundle: 'OLD' } }, { name: 'c', clientConfig: {} }];
    expect(caBundlePatch(hooks, 'NEW')).toEqual([
      { op: 'test', path: '/webhooks/1/name', value: 'b' },
      { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: 'NEW' },
      { op: 'test', path: '/webhooks/2/name', value: 'c' },
      { op: 'add', path: '/webhooks/2/clientConfig/caBundle', value: 'NEW' },
    ]);
    expect(caBundlePatch([{ name: 'a', clientConfig: { caBundle: 'NEW' } }], 'NEW')).toEqual([]);
  });
});

describe('--patch-ca-bundle against the API server', () => {
  it('writes the CA into every webhook once, with a JSON patch that leaves other fields alone', async () => {
    const s = await setup();
    s.writer().sync();
    await until('the write', () => s.results.length === 1);
    expect(s.results).toEqual(['patched']);
    const mwc = stored(s.fake);
    const expected = Buffer.from(s.ca).toString('base64');
    expect(mwc.webhooks.map((w) => w.clientConfig.caBundle)).toEqual([expected, expected]);
    expect(mwc.webhooks[0]!.failurePolicy).toBe('Fail');
    expect(mwc.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'Helm' });
    expect(patches(s.fake).map((r) => r.contentType)).toEqual(['application/json-patch+json']);

    // Equal already: read, not written.
    s.writer().sync();
    await until('the second check', () => s.results.length === 2);
    expect(s.results).toEqual(['patched', 'unchanged']);
    expect(patches(s.fake).length).toBe(1);
  });

  it('rewrites after the CA rotates, and two replicas writing at once converge without clobbering', async () => {
    const s = await setup();
    const a = s.writer();
    const b = s.writer();
    a.sync();
    b.sync();
    // Both settled (a write refused by the other's resourceVersion is retried): only then does the Secret change.
    expect(await Promise.all([a.ensureTrusted(5000), b.ensureTrusted(5000)])).toEqual([true, true]);
    const first = Buffer.from(s.ca).toString('base64');
    expect(stored(s.fake).webhooks.every((w) => w.clientConfig.caBundle === first)).toBe(true);

    const rotated = await generateCertificates({ service: NAME, namespace: 'sidecar-injector', dev: false, days: 1 });
    writeFileSync(s.caPath, rotated.caCert);
    const before = patches(s.fake).length;
    a.sync();
    await until('the rewrite', () => patches(s.fake).length > before && s.results.length >= 3);
    // b's Lease still says it trusts the first CA: both stay until b has seen the new Secret.
    // (In one canonical order: newest first, a tie in the same second broken by fingerprint.)
    const both = Buffer.from(stored(s.fake).webhooks[0]!.clientConfig.caBundle!, 'base64').toString();
    expect([both.length, both.includes(rotated.caCert), both.includes(s.ca)]).toEqual([rotated.caCert.length + s.ca.length, true, true]);
    b.sync();
    await until('b agrees', () => Buffer.from(stored(s.fake).webhooks[0]!.clientConfig.caBundle!, 'base64').toString() === rotated.caCert);
    a.sync();
    b.sync();
    const settled = patches(s.fake).length;
    await until('both checked', () => s.results.slice(-2).every((r) => r === 'unchanged'));
    expect(patches(s.fake).length).toBe(settled);
  });

  it('retries with backoff when the API server refuses, and never writes a half-read CA', async () => {
    const s = await setup();
    s.fake.failures.push({ pattern: /^PATCH /, code: 500 }, { pattern: /^GET \/apis\/admissionregistration/, code: 503 });
    s.writer().sync();
    await until('success after failures', () => s.results.includes('patched'));
    expect(s.results).toEqual(['failure', 'failure', 'patched']);

    writeFileSync(s.caPath, 'not a certificate');
    const count = s.results.length;
    const w = s.writer();
    w.sync();
    await until('a failure', () => s.results.length > count);
    expect(s.results.at(-1)).toBe('failure');
    w.stop();
    expect(patches(s.fake).filter((r) => JSON.stringify(r.body).includes(Buffer.from('not a certificate').toString('base64')))).toEqual([]);
  });

  it('a webhook list reordered between our read and our write fails the guard (422) and is retried on the new order', async () => {
    const s = await setup();
    let reordered = false;
    s.fake.beforeRoute = (r) => {
      if (r.method !== 'PATCH' || reordered) return;
      reordered = true; // another writer swaps the two webhooks after our GET
      const mwc = stored(s.fake);
      s.fake.put('mutatingwebhookconfigurations', { ...mwc, webhooks: [mwc.webhooks[1], mwc.webhooks[0]] });
    };
    s.writer().sync();
    await until('patched after the conflict', () => s.results.includes('patched'));
    expect(s.results).toEqual(['failure', 'patched']);
    const ca = Buffer.from(s.ca).toString('base64');
    expect(stored(s.fake).webhooks.map((w) => [w.name, w.clientConfig.caBundle])).toEqual([
      ['pods-opt-out.sidecar-injector.io', ca],
      ['pods.sidecar-injector.io', ca],
    ]);
  });
});
