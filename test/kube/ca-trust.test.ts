/**
 * Issue 20: the caBundle is the union of what the live replicas serve with
 * and trust, whatever each Secret's ca.crt says. Each rule of the bundle has
 * a test here that fails when that rule is removed from the code: a CA a
 * live replica needs stays; one no live replica needs leaves (after the
 * grace); an expired one leaves; a dead replica's Lease stops counting; the
 * write is guarded by the resourceVersion read before the Leases.
 *
 * Issue 32: a CA counts as trusted once the API server shows that it admits
 * with a configuration trusting it (the probe of ca-bundle.ts), not a fixed
 * time after the write. The fake API server has no admission chain, so
 * `AdmissionModel` plays kube-apiserver's for the probe Lease: the webhooks
 * of the configuration its informer last saw, called in order, failing
 * closed with "failed calling webhook NAME" (webhook/mutating/dispatcher.go);
 * a test can hold that informer back (`lag()`) to show that nothing but the
 * API server catching up makes a replica trusted.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Lease } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import {
  armPatch,
  CaBundleWriter,
  desiredCas,
  FAILURE_POLICY_ANNOTATION,
  isProbeWebhook,
  newProbe,
  PROBE_LABEL,
  PROBE_SERVICE,
  probeOutcome,
  probeWebhooks,
  retiring,
  type CaBundleResult,
} from '../../src/kube/ca-bundle.js';
import { KubeError, type KubeClient, type RequestOpts } from '../../src/kube/client.js';
import { LEASE_LABEL, liveNeeds, microTime, ReplicaLease, replicaIdentity, SERVING_ANNOTATION, TRUSTED_ANNOTATION } from '../../src/kube/replica-lease.js';
import { generateCa, issueServingCertificate, type CertificateAuthority } from '../../src/tls/generate.js';
import { certInfo, type CertInfo } from '../../src/tls/inspect.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { quietLogger, startFake, until } from './helpers.js';

const NAME = 'sidecar-injector';
const NS = 'sidecar-injector';
const REQ = { service: NAME, namespace: NS, dev: false, days: 30 };

const info = (ca: CertificateAuthority) => certInfo(ca.caCert);

/** A logger whose lines a test can read. */
function capture(): { logger: Logger; lines: { msg: string; [k: string]: unknown }[] } {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  return { logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) }), lines };
}
const fps = (cas: readonly CertInfo[]) => cas.map((c) => c.fingerprint);

describe('desiredCas (pure)', () => {
  it('keeps ours and the current CAs another live replica needs; drops the rest; drops expired ones even when needed', async () => {
    const [mine, needed, unneeded] = await Promise.all([generateCa(REQ), generateCa(REQ), generateCa(REQ)]);
    const expired = await generateCa({ ...REQ, days: 1, now: new Date(Date.now() - 3 * 86_400_000) });
    const current = [info(needed), info(unneeded), info(expired)];
    const want = desiredCas(current, [info(mine)], new Set([info(needed).fingerprint, info(expired).fingerprint]), new Date());
    expect(new Set(fps(want))).toEqual(new Set([info(mine).fingerprint, info(needed).fingerprint]));
    // Ours expired: not written either.
    expect(desiredCas([], [info(expired)], new Set(), new Date())).toEqual([]);
  });

  it('without Leases (others unknown) removes nothing but expired CAs', async () => {
    const [a, b] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const expired = await generateCa({ ...REQ, days: 1, now: new Date(Date.now() - 3 * 86_400_000) });
    expect(new Set(fps(desiredCas([info(b), info(expired)], [info(a)], undefined, new Date())))).toEqual(new Set(fps([info(a), info(b)])));
  });

  it('one canonical order, newest first, whatever the input order', async () => {
    const old = await generateCa({ ...REQ, now: new Date(Date.now() - 86_400_000) });
    const young = await generateCa(REQ);
    const need = new Set(fps([info(old), info(young)]));
    expect(fps(desiredCas([info(old)], [info(young)], need, new Date()))).toEqual(fps(desiredCas([info(young)], [info(old)], need, new Date())));
    expect(fps(desiredCas([info(old)], [info(young)], need, new Date()))[0]).toBe(info(young).fingerprint);
  });
});

describe('retiring (pure)', () => {
  it('a CA no one needs stays for the grace period, then leaves; needed again, its clock restarts', async () => {
    const ca = info(await generateCa(REQ));
    const since = new Map<string, number>();
    expect(retiring([ca], new Set(), since, 1000, 500)).toEqual(new Set([ca.fingerprint]));
    expect(retiring([ca], new Set(), since, 1499, 500)).toEqual(new Set([ca.fingerprint]));
    expect(retiring([ca], new Set(), since, 1500, 500)).toEqual(new Set());
    expect(retiring([ca], new Set([ca.fingerprint]), since, 1600, 500)).toEqual(new Set());
    expect(since.size).toBe(0);
    expect(retiring([ca], new Set(), since, 1700, 500)).toEqual(new Set([ca.fingerprint]));
  });
});

describe('replica Leases (pure parts)', () => {
  const lease = (name: string, renewedMsAgo: number, serving: string, trusted = ''): V1Lease => ({
    metadata: { name, annotations: { [SERVING_ANNOTATION]: serving, [TRUSTED_ANNOTATION]: trusted } },
    spec: { leaseDurationSeconds: 15, renewTime: microTime(new Date(Date.now() - renewedMsAgo)) as unknown as Date },
  });

  it('counts the needs of live Leases other than ours; an expired Lease counts for nothing', () => {
    const needs = liveNeeds([lease('me', 0, 'MINE'), lease('b', 1000, 'B1,B2', 'T'), lease('dead', 16_000, 'DEAD'), { metadata: { name: 'no-spec' } }], 'me', new Date());
    expect(needs).toEqual(new Set(['B1', 'B2', 'T']));
  });

  it('MicroTime has six fractional digits', () => {
    expect(microTime(new Date('2026-11-30T08:00:00.123Z'))).toBe('2026-11-30T08:00:00.123000Z');
  });

  it('knows itself by POD_NAME and POD_NAMESPACE, else hostname-pid and the service account namespace, else default', () => {
    expect(replicaIdentity({ POD_NAME: 'si-abc', POD_NAMESPACE: 'ops' }, 'h', 1, () => 'x')).toEqual({ name: 'si-abc', namespace: 'ops' });
    expect(replicaIdentity({}, 'Build_Host', 42, () => 'sidecar-injector\n')).toEqual({ name: 'build-host-42', namespace: 'sidecar-injector' });
    expect(
      replicaIdentity({}, 'h', 7, () => {
        throw new Error('ENOENT');
      }),
    ).toEqual({ name: 'h-7', namespace: 'default' });
  });
});

/** A replica as the writer sees it: its own ca.crt and tls.crt, its Lease, its writer. */
interface Replica {
  writer: CaBundleWriter;
  results: CaBundleResult[];
  files(ca: CertificateAuthority, trust: CertificateAuthority[]): Promise<void>;
}

type Obj = Record<string, unknown>;
type Hook = { name: string; failurePolicy?: string; rules?: { resources?: string[]; operations?: string[] }[]; clientConfig: { service?: { name?: string }; url?: string }; namespaceSelector?: { matchLabels?: Record<string, string> }; objectSelector?: { matchLabels?: Record<string, string> } };

/**
 * kube-apiserver's mutating admission of a dry-run Lease create, over the fake: the webhooks of the
 * configuration its informer last saw (the stored one, or a copy held by lag()) whose rules, namespaceSelector
 * and objectSelector match, called in order. The probe's marker names a Service that does not exist (the
 * dispatcher fails closed: 500 "failed calling webhook"); any other webhook answers when `answering`. Then
 * validation refuses the probe Lease (422), as the API server's would. Also answers SelfSubjectReview as `username`.
 */
class AdmissionModel {
  private held: Obj | undefined;
  answering = true;
  username: string | undefined;
  /** Dry-run Lease creates seen, and how many the configuration's probe matched. */
  probes = 0;
  seen = 0;
  /** The namespace of each dry-run Lease create. */
  readonly namespaces: string[] = [];

  constructor(private readonly f: FakeApiServer) {}

  /** The informer stops at the configuration stored now. */
  lag(): void {
    this.held = structuredClone(this.f.get('mutatingwebhookconfigurations', NAME));
  }

  catchUp(): void {
    this.held = undefined;
  }

  client(inner: KubeClient): KubeClient {
    return {
      ...inner,
      request: async (method: string, path: string, ro?: RequestOpts) => {
        if (method === 'POST' && path === '/apis/authentication.k8s.io/v1/selfsubjectreviews' && this.username) return { status: 201, body: { status: { userInfo: { username: this.username } } } };
        const dryRun = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases\?dryRun=All$/.exec(path);
        if (method !== 'POST' || !dryRun) return inner.request(method, path, ro);
        this.admit(dryRun[1]!, ro?.body as { metadata?: { labels?: Record<string, string> } });
        // Then validation, which the probe Lease fails (coordination validation.go); a dry run stores nothing.
        throw new KubeError(422, 'Invalid', `POST ${path}: 422 Invalid: Lease.coordination.k8s.io is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0`);
      },
    };
  }

  private admit(namespace: string, lease: { metadata?: { labels?: Record<string, string> } }): void {
    this.probes += 1;
    this.namespaces.push(namespace);
    const mwc = (this.held ?? this.f.get('mutatingwebhookconfigurations', NAME)) as { webhooks: Hook[] };
    const labels = lease.metadata?.labels ?? {};
    const matches = (sel: Record<string, string> | undefined, have: Record<string, string>) => Object.entries(sel ?? {}).every(([k, v]) => have[k] === v);
    for (const w of mwc.webhooks) {
      if (!(w.rules ?? []).some((r) => r.resources?.includes('leases') && r.operations?.includes('CREATE'))) continue;
      if (!matches(w.namespaceSelector?.matchLabels, { 'kubernetes.io/metadata.name': namespace }) || !matches(w.objectSelector?.matchLabels, labels)) continue;
      const fail = (why: string) => new KubeError(500, 'InternalError', `POST /leases: 500 InternalError: Internal error occurred: failed calling webhook "${w.name}": failed to call webhook: ${why}`);
      if (w.clientConfig.service?.name === PROBE_SERVICE) {
        this.seen += 1;
        throw fail(`service "${PROBE_SERVICE}" not found`);
      }
      if (!this.answering) throw fail('dial tcp: connect: connection refused');
    }
  }
}

let fake: FakeApiServer | undefined;
let client: KubeClient;
let admission: AdmissionModel;
const writers: CaBundleWriter[] = [];
afterEach(async () => {
  for (const w of writers.splice(0)) w.stop();
  await fake?.stop();
  fake = undefined;
});

async function cluster() {
  const started = await startFake();
  fake = started.fake;
  admission = new AdmissionModel(started.fake);
  client = admission.client(started.client);
  fake.webhookConfiguration(NAME, NS);
  return started.fake;
}

/** The webhooks the chart installs; probe webhooks come and go. */
const realHooks = (f: FakeApiServer) => (f.get('mutatingwebhookconfigurations', NAME) as { webhooks: Hook[] & { clientConfig: { caBundle?: string } }[] }).webhooks.filter((w) => !isProbeWebhook(w.name));
const probeHooks = (f: FakeApiServer) => (f.get('mutatingwebhookconfigurations', NAME) as { webhooks: Hook[] }).webhooks.filter((w) => isProbeWebhook(w.name));

interface ReplicaOpts {
  durationSeconds?: number;
  retireAfterMs?: number;
  inUseBoundMs?: number;
  /** The writer's resync (only the retry of a live probe uses it here: tests call sync()). */
  resyncMs?: number;
  onResult?: (r: CaBundleResult) => void;
  logger?: Logger;
}

async function replica(name: string, ca: CertificateAuthority, trust: CertificateAuthority[], opts: ReplicaOpts = {}): Promise<Replica> {
  const dir = mkdtempSync(join(tmpdir(), `replica-${name}-`));
  const files = async (signer: CertificateAuthority, set: CertificateAuthority[]) => {
    writeFileSync(join(dir, 'ca.crt'), set.map((c) => c.caCert).join(''));
    writeFileSync(join(dir, 'tls.crt'), (await issueServingCertificate(REQ, signer)).cert);
  };
  await files(ca, trust);
  const results: CaBundleResult[] = [];
  const writer = new CaBundleWriter({
    client,
    name: NAME,
    caPath: join(dir, 'ca.crt'),
    certPath: join(dir, 'tls.crt'),
    lease: new ReplicaLease({ client, identity: { name, namespace: NS }, webhookConfiguration: NAME, durationSeconds: opts.durationSeconds ?? 15 }),
    retireAfterMs: opts.retireAfterMs ?? 0,
    inUseBoundMs: opts.inUseBoundMs ?? 5000,
    resyncMs: opts.resyncMs,
    logger: opts.logger ?? quietLogger,
    onResult: (r) => {
      results.push(r);
      opts.onResult?.(r);
    },
    backoffInitialMs: 20,
    backoffMaxMs: 50,
  });
  writers.push(writer);
  return { writer, results, files };
}

const bundle = (f: FakeApiServer) => realHooks(f).map((w) => Buffer.from((w.clientConfig as { caBundle?: string }).caBundle ?? '', 'base64').toString('utf8'));
const holds = (f: FakeApiServer, ...cas: CertificateAuthority[]) => bundle(f).every((b) => cas.every((c) => b.includes(c.caCert)));
const exactly = (f: FakeApiServer, ...cas: CertificateAuthority[]) => bundle(f).every((b) => b.length === cas.reduce((n, c) => n + c.caCert.length, 0) && holds(f, ...cas));

/** What serve.ts does before it serves a new certificate: stored, then shown in use. */
async function settle(r: Replica): Promise<void> {
  expect(await r.writer.ensureTrusted(5000)).toBe(true);
  expect(await r.writer.whenInUse()).toBe(true);
}

describe('the caBundle across replicas, through the fake API server', () => {
  it('a Secret replaced whole on one replica keeps the CA the other still serves with; the other catching up removes it', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const one = await replica('one', caA, [caA]);
    const two = await replica('two', caA, [caA]);
    await settle(one);
    await settle(two);
    expect(exactly(f, caA)).toBe(true);

    await one.files(caB, [caB]); // only the new CA in ca.crt
    await settle(one);
    expect(exactly(f, caA, caB)).toBe(true); // two still serves with A
    one.writer.inForce();
    await settle(one);
    expect(holds(f, caA)).toBe(true);

    await two.files(caB, [caB]);
    await settle(two);
    two.writer.inForce();
    await settle(two);
    await settle(one);
    expect(exactly(f, caB)).toBe(true);
  });

  it('a replica behind puts its own CA back when another removed it (no last-writer-wins)', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const behind = await replica('behind', caA, [caA]);
    await settle(behind);
    // Someone (an older release, a user) writes only B.
    f.put('mutatingwebhookconfigurations', {
      ...f.get('mutatingwebhookconfigurations', NAME)!,
      webhooks: (f.get('mutatingwebhookconfigurations', NAME)!.webhooks as { clientConfig: object }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: Buffer.from(caB.caCert).toString('base64') } })),
    });
    behind.writer.sync();
    await until('A back', () => holds(f, caA));
    expect(holds(f, caA, caB) || exactly(f, caA)).toBe(true);
  });

  it('a replica that goes away without deleting its Lease stops counting once the Lease expires, and its CA leaves', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const live = await replica('live', caB, [caB]);
    // A dead replica's Lease: it served with A, renewed 1 s ago, 3 s long.
    const deadLease = (renewed: Date) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'dead', namespace: NS, labels: { [LEASE_LABEL]: NAME }, annotations: { [SERVING_ANNOTATION]: info(caA).fingerprint, [TRUSTED_ANNOTATION]: info(caA).fingerprint } },
      spec: { holderIdentity: 'dead', leaseDurationSeconds: 3, renewTime: microTime(renewed) },
    });
    f.put('leases', deadLease(new Date(Date.now() - 1000)));
    f.put('mutatingwebhookconfigurations', {
      ...f.get('mutatingwebhookconfigurations', NAME)!,
      webhooks: (f.get('mutatingwebhookconfigurations', NAME)!.webhooks as { clientConfig: object }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: Buffer.from(caA.caCert).toString('base64') } })),
    });
    await settle(live);
    expect(exactly(f, caA, caB)).toBe(true); // A: the dead replica's Lease is still live
    f.put('leases', deadLease(new Date(Date.now() - 4000)));
    live.writer.sync();
    await until('A gone', () => exactly(f, caB));
  });

  it('a Lease of another webhook configuration does not count', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const live = await replica('live', caB, [caB]);
    f.put('leases', {
      metadata: { name: 'other-install', namespace: NS, labels: { [LEASE_LABEL]: 'another-injector' }, annotations: { [SERVING_ANNOTATION]: info(caA).fingerprint } },
      spec: { leaseDurationSeconds: 60, renewTime: microTime(new Date()) },
    });
    f.put('mutatingwebhookconfigurations', {
      ...f.get('mutatingwebhookconfigurations', NAME)!,
      webhooks: (f.get('mutatingwebhookconfigurations', NAME)!.webhooks as { clientConfig: object }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: Buffer.from(caA.caCert).toString('base64') } })),
    });
    await settle(live);
    expect(exactly(f, caB)).toBe(true);
  });

  it('a CA no one needs stays for the grace period before it leaves', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const r = await replica('r', caA, [caA], { retireAfterMs: 600 });
    await settle(r);
    await r.files(caB, [caB]);
    await settle(r);
    r.writer.inForce();
    await settle(r);
    expect(exactly(f, caA, caB)).toBe(true);
    const since = Date.now();
    await until('A retired', () => {
      r.writer.sync();
      return exactly(f, caB);
    });
    expect(Date.now() - since).toBeGreaterThanOrEqual(400);
  });

  it('a replica is trusted only once its write has landed and the API server admits with it, not when a write is refused', async () => {
    const f = await cluster();
    const ca = await generateCa(REQ);
    const r = await replica('starting', ca, [ca]);
    f.failures.push({ pattern: /^PATCH \/apis\/admissionregistration/, code: 422 });
    r.writer.sync();
    await until('the refused write', () => r.results.includes('failure'));
    expect(r.writer.trusted()).toBe(false);
    admission.lag(); // stored, but the API server's informer has not seen it yet
    expect(await r.writer.ensureTrusted(5000)).toBe(true);
    expect(holds(f, ca)).toBe(true);
    await until('the probe refused a few times', () => admission.probes >= 3);
    expect(r.writer.trusted()).toBe(false);
    admission.catchUp();
    expect(await r.writer.whenInUse()).toBe(true);
    expect(r.writer.trusted()).toBe(true);
  });

  it('a replica stopping deletes its Lease; the others stop counting it at once', async () => {
    const f = await cluster();
    const ca = await generateCa(REQ);
    const r = await replica('leaving', ca, [ca]);
    await settle(r);
    expect(f.get('leases', `${NS}/leaving`)).toBeDefined();
    await r.writer.release();
    expect(f.get('leases', `${NS}/leaving`)).toBeUndefined();
  });

  it('the write is guarded by the resourceVersion read: a replica that writes between our read and our write makes us retry', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const first = await replica('first', caA, [caA]);
    await settle(first);
    const late = await replica('late', caB, [caB]);
    // After first's Lease list, before its PATCH: late publishes and writes B.
    let raced = false;
    f.beforeRoute = (r) => {
      if (raced || r.method !== 'PATCH' || !f.requests.some((x) => x.path.endsWith('/leases') && x.method === 'GET')) return;
      raced = true;
      f.put('mutatingwebhookconfigurations', {
        ...f.get('mutatingwebhookconfigurations', NAME)!,
        webhooks: (f.get('mutatingwebhookconfigurations', NAME)!.webhooks as { clientConfig: object }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: Buffer.from(caB.caCert + caA.caCert).toString('base64') } })),
      });
    };
    await late.files(caB, [caB]);
    // first's ca.crt changes to force a write (A and a fresh C).
    const caC = await generateCa(REQ);
    await first.files(caA, [caA, caC]);
    await settle(first);
    expect(raced).toBe(true);
    expect(first.results).toContain('failure'); // the 422 of the resourceVersion test
    await settle(late);
    expect(holds(f, caA, caB, caC)).toBe(true);
  });
});

describe('the probe: what the API server admits with (pure)', () => {
  it('matches only a CREATE of a Lease labelled with its nonce in one namespace; the marker calls a Service that does not exist, the live copy the real one first', () => {
    const probe = newProbe(true, Date.UTC(2026, 11, 1));
    const real = { clientConfig: { url: 'https://si.example:8443/mutate', caBundle: 'Q0E=' } };
    const [live, marker] = probeWebhooks(probe, 'si', real) as Hook[];
    expect(isProbeWebhook(marker!.name) && isProbeWebhook(live!.name)).toBe(true);
    expect(marker).toMatchObject({
      failurePolicy: 'Fail',
      sideEffects: 'None',
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], operations: ['CREATE'] }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'si' } },
      objectSelector: { matchLabels: { [PROBE_LABEL]: probe.nonce } },
      clientConfig: { service: { name: PROBE_SERVICE, namespace: 'si' } },
    });
    expect(live!.clientConfig).toEqual(real.clientConfig);
    expect(probeWebhooks(newProbe(false), 'si', real)).toHaveLength(1);
    // Webhook names: a DNS subdomain of three labels or more (admissionregistration validation).
    expect(marker!.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$/);
  });

  it('reads the dry-run answer: the marker named means in use (and live when the copy came first), the copy named means in use but not callable, anything else means not yet', () => {
    const probe = newProbe(true);
    const failed = (name: string) => new KubeError(500, 'InternalError', `POST x: 500 InternalError: Internal error occurred: failed calling webhook "${name}": failed to call webhook: …`);
    expect(probeOutcome(probe, failed(probe.marker))).toEqual({ seen: true, live: true });
    expect(probeOutcome(probe, failed(probe.live!))).toMatchObject({ seen: true, live: false });
    expect(probeOutcome(probe, failed('other.example.com')).seen).toBe(false);
    expect(probeOutcome(probe, new KubeError(422, 'Invalid', 'Lease.coordination.k8s.io "x" is invalid')).seen).toBe(false);
    expect(probeOutcome(newProbe(false), failed(probe.marker)).seen).toBe(false); // another probe's marker
    const plain = newProbe(false);
    expect(probeOutcome(plain, failed(plain.marker))).toEqual({ seen: true });
  });

  it('failurePolicy is written into the real webhooks that lack it, never into a probe', () => {
    const hooks = [{ name: 'a', failurePolicy: 'Ignore' }, { name: 'b', failurePolicy: 'Fail' }, { name: `${newProbe(false).marker}`, failurePolicy: 'Fail' }, { name: 'c' }];
    expect(armPatch(hooks, 'Fail')).toEqual([
      { op: 'test', path: '/webhooks/0/name', value: 'a' },
      { op: 'add', path: '/webhooks/0/failurePolicy', value: 'Fail' },
      { op: 'test', path: '/webhooks/3/name', value: 'c' },
      { op: 'add', path: '/webhooks/3/failurePolicy', value: 'Fail' },
    ]);
  });
});

describe('trusted once the API server admits with it (issue 32: no fixed wait)', () => {
  const mwcPatches = (f: FakeApiServer) => f.requests.filter((r) => r.method === 'PATCH' && r.path.includes('mutatingwebhookconfigurations'));

  it('the write that makes the CA trusted carries the probe; the probe is removed once the API server showed it', async () => {
    const f = await cluster();
    const ca = await generateCa(REQ);
    const r = await replica('one', ca, [ca]);
    await settle(r);
    const [write] = mwcPatches(f);
    const ops = write!.body as { op: string; path: string; value?: { name?: string } }[];
    expect(ops.some((o) => o.path === '/webhooks/1/clientConfig/caBundle')).toBe(true);
    expect(ops.filter((o) => o.path === '/webhooks/-').map((o) => isProbeWebhook(o.value?.name))).toEqual([true]);
    expect(admission.seen).toBe(1);
    expect(probeHooks(f)).toEqual([]);
    expect(r.writer.trusted()).toBe(true);
  });

  it('a CA the bundle already trusted when the replica starts is taken as in use: no probe, no write', async () => {
    const f = await cluster();
    const ca = await generateCa(REQ);
    const first = await replica('first', ca, [ca]);
    await settle(first);
    const before = mwcPatches(f).length;
    const probes = admission.probes;
    const second = await replica('second', ca, [ca]);
    await settle(second);
    expect(second.writer.trusted()).toBe(true);
    expect([mwcPatches(f).length, admission.probes]).toEqual([before, probes]);
  });

  it('a new CA another replica already wrote is probed before this replica serves with it, whatever the time', async () => {
    const f = await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const one = await replica('one', caA, [caA, caB]);
    const two = await replica('two', caA, [caA]);
    await settle(one);
    await settle(two);
    expect(holds(f, caA, caB)).toBe(true);
    admission.lag();
    await two.files(caB, [caA, caB]); // its new certificate is signed by B, which the bundle already holds
    expect(await two.writer.ensureTrusted(5000)).toBe(true);
    await until('the probe refused a few times', () => admission.probes >= 3);
    expect(two.writer.trusted()).toBe(false);
    admission.catchUp();
    expect(await two.writer.whenInUse()).toBe(true);
    expect(probeHooks(f)).toEqual([]);
  });

  it('a reload while an earlier probe is still waiting gets a probe of its own before it counts as in use', async () => {
    await cluster();
    const [caA, caB] = await Promise.all([generateCa(REQ), generateCa(REQ)]);
    const r = await replica('reloading', caA, [caA]);
    admission.lag(); // the first probe (for A) waits
    expect(await r.writer.ensureTrusted(5000)).toBe(true);
    await r.files(caB, [caA, caB]); // the reload: B written while A's probe is still out
    expect(await r.writer.ensureTrusted(5000)).toBe(true);
    const inUse = r.writer.whenInUse();
    await until('the first probe refused a few times', () => admission.probes >= 3);
    admission.catchUp();
    expect(await inUse).toBe(true);
    expect(admission.seen).toBe(2); // A's probe, then B's
  });

  it('past the bound a replica goes on without: logged and counted as unconfirmed', async () => {
    await cluster();
    const ca = await generateCa(REQ);
    const { logger, lines } = capture();
    const r = await replica('bounded', ca, [ca], { inUseBoundMs: 300, logger });
    admission.lag(); // the informer never catches up
    const started = Date.now();
    expect(await r.writer.ensureTrusted(5000)).toBe(true);
    expect(await r.writer.whenInUse()).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(r.results).toContain('unconfirmed');
    expect(lines.find((l) => l.msg.startsWith('the API server did not show that it uses the caBundle'))).toMatchObject({ level: 40, boundMs: 300 });
  });

  it("probes in the namespace of the replica's service account (SelfSubjectReview)", async () => {
    const f = await cluster();
    f.namespace('injector-ns');
    admission.username = 'system:serviceaccount:injector-ns:sidecar-injector';
    const ca = await generateCa(REQ);
    const r = await replica('sa', ca, [ca]);
    await settle(r);
    expect(new Set(admission.namespaces)).toEqual(new Set(['injector-ns']));
    expect(probeHooks(f)).toEqual([]);
    expect(admission.seen).toBe(1);
  });

  it('a probe webhook left by a replica that died is removed; a fresh one of another replica stays', async () => {
    const f = await cluster();
    const ca = await generateCa(REQ);
    const stale = probeWebhooks(newProbe(false, Date.now() - 120_000), NS)[0] as Hook;
    const fresh = probeWebhooks(newProbe(false), NS)[0] as Hook;
    const mwc = f.get('mutatingwebhookconfigurations', NAME)!;
    f.put('mutatingwebhookconfigurations', { ...mwc, webhooks: [...(mwc.webhooks as object[]), stale, fresh] });
    const r = await replica('cleaner', ca, [ca]);
    await settle(r);
    expect(probeHooks(f).map((w) => w.name)).toEqual([fresh.name]);
  });
});

describe('failurePolicy once the webhook answers (issue 32: the install window)', () => {
  const policies = (f: FakeApiServer) => realHooks(f).map((w) => w.failurePolicy);
  /** The chart as proposed: webhooks Ignore, the wanted policy in the annotation. */
  const annotate = (f: FakeApiServer, policy: string) => {
    const mwc = f.get('mutatingwebhookconfigurations', NAME)!;
    f.put('mutatingwebhookconfigurations', {
      ...mwc,
      metadata: { ...(mwc.metadata as object), annotations: { [FAILURE_POLICY_ANNOTATION]: policy } },
      webhooks: (mwc.webhooks as object[]).map((w) => ({ ...w, failurePolicy: 'Ignore' })),
    });
  };

  it('Fail is written only after the API server called the real webhook through the probe; while it cannot, Ignore stays', async () => {
    const f = await cluster();
    annotate(f, 'Fail');
    admission.answering = false; // no replica behind the Service yet
    const ca = await generateCa(REQ);
    const r = await replica('arming', ca, [ca], { resyncMs: 100 });
    await settle(r);
    expect(r.writer.trusted()).toBe(true); // readiness does not wait for the Service
    expect(policies(f)).toEqual(['Ignore', 'Ignore']);
    admission.answering = true;
    await until('armed', () => {
      r.writer.sync();
      return policies(f).every((p) => p === 'Fail');
    });
    expect(probeHooks(f)).toEqual([]);
  });

  it('without the annotation the failurePolicy is never touched', async () => {
    const f = await cluster();
    const mwc = f.get('mutatingwebhookconfigurations', NAME)!;
    f.put('mutatingwebhookconfigurations', { ...mwc, webhooks: (mwc.webhooks as object[]).map((w) => ({ ...w, failurePolicy: 'Ignore' })) });
    const ca = await generateCa(REQ);
    const r = await replica('plain', ca, [ca]);
    await settle(r);
    await settle(r);
    expect(policies(f)).toEqual(['Ignore', 'Ignore']);
    const bodies = f.requests.filter((q) => q.method === 'PATCH').map((q) => JSON.stringify(q.body));
    expect(bodies.some((b) => b.includes('failurePolicy"}') || b.includes('/failurePolicy'))).toBe(false);
  });
});

/**
 * Three replicas reloading in random orders, some steps at once (fast-check over orders and timings):
 * every CA a replica serves with is in the bundle after every step (a replica swaps only once its new
 * CA is trusted, as serve.ts does), and once all have caught up the bundle is exactly the union of what
 * they need and stops changing.
 */
describe('three replicas converge (fast-check over orders and timings)', () => {
  const SEED = Number(process.env.PROPERTY_SEED ?? 20261130);
  const RUNS = Number(process.env.CONVERGENCE_RUNS ?? 15);
  type Step = { replica: number; kind: 'reload'; ca: number; whole: boolean } | { replica: number; kind: 'sync' };
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ replica: fc.nat(2), kind: fc.constant('reload' as const), ca: fc.integer({ min: 1, max: 2 }), whole: fc.boolean() }),
    fc.record({ replica: fc.nat(2), kind: fc.constant('sync' as const) }),
  );
  // Batches of steps run at once: the timings.
  const schedule = fc.array(fc.array(step, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 5 });

  it('never untrust what a replica serves, and end agreeing and quiet', async () => {
    const f = await cluster();
    const cas = await Promise.all([generateCa(REQ), generateCa(REQ), generateCa(REQ)]);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(schedule, async (batches) => {
        run += 1;
        for (const l of f.all('leases')) f.remove('leases', `${NS}/${(l.metadata as { name: string }).name}`);
        f.webhookConfiguration(NAME, NS);
        const serving = [0, 0, 0];
        const trust: number[][] = [[0], [0], [0]];
        const rs = await Promise.all([0, 1, 2].map((i) => replica(`r${run}-${i}`, cas[0]!, [cas[0]!], { retireAfterMs: 150 })));
        await Promise.all(rs.map(settle));
        // Steps on one replica run in order; steps on different replicas at once.
        const reload = async (i: number, ca: number, whole: boolean) => {
          trust[i] = whole ? [ca] : [ca, serving[i]!];
          await rs[i]!.files(cas[ca]!, trust[i]!.map((c) => cas[c]!));
          await settle(rs[i]!);
          serving[i] = ca;
          rs[i]!.writer.inForce();
        };
        for (const batch of batches) {
          const byReplica = [0, 1, 2].map((i) => batch.filter((s) => s.replica === i));
          await Promise.all(
            byReplica.map(async (steps, i) => {
              for (const s of steps) {
                if (s.kind === 'reload') await reload(i, s.ca, s.whole);
                else await settle(rs[i]!);
              }
            }),
          );
          for (const i of [0, 1, 2]) expect(holds(f, cas[serving[i]!]!)).toBe(true);
        }
        // Everyone catches up; past the grace, the bundle is exactly what the replicas need.
        await Promise.all(rs.map(settle));
        await new Promise((r) => setTimeout(r, 200));
        await Promise.all(rs.map(settle));
        const needed = new Set([0, 1, 2].flatMap((i) => [serving[i]!, ...trust[i]!]));
        expect(exactly(f, ...[...needed].map((c) => cas[c]!))).toBe(true);
        const writes = f.requests.filter((r) => r.method === 'PATCH').length;
        await Promise.all(rs.map(settle));
        expect(f.requests.filter((r) => r.method === 'PATCH').length).toBe(writes);
        for (const r of rs) await r.writer.release();
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 120_000);
});

describe('replica Leases on the fake API server (create, get, update with conflicts, delete)', () => {
  it('a Lease left by an earlier run of the same pod is taken over; an update on a stale copy conflicts, is read again and retried', async () => {
    const f = await cluster();
    const identity = { name: 'restarted', namespace: NS };
    const first = new ReplicaLease({ client, identity, webhookConfiguration: NAME, durationSeconds: 15 });
    await first.publish({ serving: ['A'], trusted: ['A'] });
    // The container restarts in the same pod: a new process, the same name; its create is 409 AlreadyExists.
    const second = new ReplicaLease({ client, identity, webhookConfiguration: NAME, durationSeconds: 15 });
    await second.publish({ serving: ['B'], trusted: ['B'] });
    const stored = () => f.get('leases', `${NS}/restarted`) as { metadata: { annotations: Record<string, string> } };
    expect(stored().metadata.annotations[SERVING_ANNOTATION]).toBe('B');
    // The first one's copy is stale now: its update is 409 Conflict, then it reads and retries.
    await first.publish({ serving: ['C'], trusted: ['C'] });
    expect(stored().metadata.annotations[SERVING_ANNOTATION]).toBe('C');
    const conflicts = f.requests.filter((r) => r.path.endsWith('/leases') || r.path.endsWith('/leases/restarted'));
    expect(conflicts.map((r) => r.method)).toEqual(['POST', 'POST', 'GET', 'PUT', 'PUT', 'GET', 'PUT']);
    await first.release();
    expect(f.get('leases', `${NS}/restarted`)).toBeUndefined();
  });

  it('the fake validates a Lease as the API server does: a MicroTime renewTime and a positive duration', async () => {
    await cluster();
    const bad = await client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, {
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'x' }, spec: { leaseDurationSeconds: 0, renewTime: '2026-11-30T08:00:00Z' } },
    }).catch((err: Error) => err);
    expect(String(bad)).toMatch(/422/);
  });
});
