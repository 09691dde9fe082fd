/**
 * The API server's side of the exchange: real AdmissionReviews over real TLS
 * (a CA made for the test, verification on), every returned patch applied
 * with a second engine and the result checked.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { V1Pod } from '@kubernetes/client-node';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { testConfig } from '../helpers/configs.js';
import { applyJsonPatch, decodePatch, patchEngine } from '../helpers/patch-engine.js';
import { podInvariantViolations } from '../helpers/invariants.js';
import { httpsRequest, postReview, startTestServer, type TestServer } from '../helpers/server.js';

interface ReviewResponse {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    auditAnnotations?: Record<string, string>;
    status?: { code: number; message: string };
  };
}

let server: TestServer;
const nsLabels: Record<string, Record<string, string>> = { labelled: { 'sidecar-injector.io/injection': 'enabled' } };

beforeAll(async () => {
  server = await startTestServer(testConfig(), (ns) => nsLabels[ns]);
});
afterAll(async () => {
  await server.close();
});

async function admit(review: Record<string, unknown>): Promise<ReviewResponse> {
  const res = await postReview(server, review);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return res.json() as ReviewResponse;
}

/** Sends the pod, applies the patch with the second engine, checks the pod. */
async function admitAndApply(pod: V1Pod, opts: Parameters<typeof admissionReview>[1] = {}) {
  const review = admissionReview(pod, opts);
  const answer = await admit(review);
  expect(answer.response.uid).toBe((review.request as { uid: string }).uid);
  expect(answer.response.patchType).toBe('JSONPatch');
  const ops = decodePatch(answer.response.patch!);
  expect(ops.every((op) => op.op === 'add')).toBe(true);
  const patched = applyJsonPatch(pod, ops);
  expect(podInvariantViolations(patched)).toEqual([]);
  return { answer, ops, patched };
}

describe(`POST /mutate over TLS (patches applied with ${patchEngine})`, () => {
  it('injects the log shipper into a pod from a ReplicaSet (v1)', async () => {
    const { answer, patched } = await admitAndApply(apiserverPod());
    expect(answer.apiVersion).toBe('admission.k8s.io/v1');
    expect(answer.kind).toBe('AdmissionReview');
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.auditAnnotations).toEqual({ decision: 'injected', profiles: 'log-shipper' });
    expect(answer.response.warnings).toBeUndefined();
    expect(patched.spec!.containers.map((c) => c.name)).toEqual(['web', 'log-shipper']);
    expect(patched.spec!.containers[0]!.volumeMounts!.map((m) => m.name)).toEqual(['kube-api-access-x7k2p', 'app-logs']);
    expect(patched.metadata!.generateName).toBe('web-7d4b9c8f6-');
  });

  it('answers v1beta1 in v1beta1', async () => {
    const { answer } = await admitAndApply(apiserverPod(), { apiVersion: 'admission.k8s.io/v1beta1' });
    expect(answer.apiVersion).toBe('admission.k8s.io/v1beta1');
  });

  it('re-submitting the patched pod (reinvocation) yields no patch', async () => {
    const { patched } = await admitAndApply(apiserverPod());
    const again = await admit(admissionReview(patched));
    expect(again.response.allowed).toBe(true);
    // The API server keeps the first call's audit annotations and logs an error for any key a re-invocation sets.
    expect(again.response.auditAnnotations).toBeUndefined();
    expect(again.response.patch).toBeUndefined();
    expect(again.response.patchType).toBeUndefined();
  });

  it('native sidecars go before the app init containers, on a pod with no volumes or annotations', async () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations = undefined;
      p.metadata!.labels = { 'sidecar-injector.io/inject': 'proxy' };
      p.spec!.volumes = undefined;
      p.spec!.containers[0]!.volumeMounts = undefined;
      p.spec!.initContainers = [{ name: 'migrate', image: 'migrate:1' }];
    });
    delete pod.metadata!.annotations;
    delete pod.spec!.volumes;
    delete pod.spec!.containers[0]!.volumeMounts;
    const { patched } = await admitAndApply(pod);
    expect(patched.spec!.initContainers!.map((c) => `${c.name}:${c.restartPolicy ?? ''}`)).toEqual(['proxy-init:', 'proxy:Always', 'migrate:']);
    expect(JSON.parse(patched.metadata!.annotations!['sidecar-injector.io/status']!)).toMatchObject({
      profiles: ['proxy'],
      initContainers: ['proxy-init', 'proxy'],
    });
  });

  it('injects through the namespace label when the pod says nothing', async () => {
    const pod = apiserverPod((p) => {
      delete p.metadata!.annotations!['sidecar-injector.io/inject'];
    });
    await admitAndApply(pod, { namespace: 'labelled' });
    const skipped = await admit(admissionReview(pod));
    expect(skipped.response).toMatchObject({ allowed: true, auditAnnotations: { decision: 'skipped' } });
    expect(skipped.response.patch).toBeUndefined();
  });

  it('warns when a requested injection is skipped', async () => {
    const answer = await admit(admissionReview(apiserverPod(), { namespace: 'kube-system' }));
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.patch).toBeUndefined();
    expect(answer.response.warnings).toEqual(['sidecar injection skipped: namespace kube-system is excluded']);
    expect(answer.response.auditAnnotations).toEqual({ decision: 'skipped', reason: 'namespace kube-system is excluded' });
  });

  it('a conflict is allowed un-injected with a warning (onConflict: skip)', async () => {
    const pod = apiserverPod((p) => {
      p.spec!.containers.push({ name: 'log-shipper', image: 'own:1' });
    });
    const answer = await admit(admissionReview(pod));
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.patch).toBeUndefined();
    expect(answer.response.auditAnnotations!.decision).toBe('conflict');
    expect(answer.response.warnings![0]).toContain('container name "log-shipper" is used twice');
  });

  it('a conflict is denied with 409 under onConflict: deny', async () => {
    server.setConfig(testConfig('onConflict: deny'));
    try {
      const pod = apiserverPod((p) => {
        p.metadata!.annotations!['sidecar-injector.io/inject'] = 'metrics';
      });
      const answer = await admit(admissionReview(pod));
      expect(answer.response.allowed).toBe(false);
      expect(answer.response.status).toMatchObject({ code: 409 });
      expect(answer.response.status!.message).toContain('containerPort 8080/TCP');
      expect(answer.response.auditAnnotations!.decision).toBe('denied');
    } finally {
      server.setConfig(testConfig());
    }
  });

  it('every warning is shorter than 120 characters', async () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = `${'x'.repeat(200)},log-shipper`;
      p.metadata!.annotations!['sidecar-injector.io/log-shipper.image'] = `registry.example.com/logging/${'y'.repeat(600)}`;
    });
    const { answer } = await admitAndApply(pod);
    expect(answer.response.warnings).toHaveLength(2);
    for (const w of answer.response.warnings!) expect(w.length).toBeLessThan(120);
  });

  it('allows anything but a Pod CREATE unchanged', async () => {
    const update = await admit(admissionReview(apiserverPod(), { operation: 'UPDATE' }));
    expect(update.response).toEqual({ uid: update.response.uid, allowed: true });
    const deployment = await admit(admissionReview({ kind: 'Deployment' }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }));
    expect(deployment.response.allowed).toBe(true);
    expect(deployment.response.patch).toBeUndefined();
  });

  it('logs one JSON line per admission with uid, namespace, pod, decision, profiles and duration', async () => {
    const review = admissionReview(apiserverPod());
    await admit(review);
    const line = server.logs.find((l) => l.uid === (review.request as { uid: string }).uid && l.msg === 'admission');
    expect(line).toMatchObject({ namespace: 'shop', pod: 'web-7d4b9c8f6-', decision: 'injected', profiles: ['log-shipper'] });
    expect(typeof line!.durationMs).toBe('number');
  });
});

describe('bad requests get a clear answer, never a crash', () => {
  const post = (body: string | Buffer, contentType?: string) =>
    httpsRequest(`${server.url}/mutate`, server.ca, { method: 'POST', body, headers: contentType ? { 'content-type': contentType } : {} });

  it.each([
    ['not JSON', '{"kind": ', 'INVALID_JSON'],
    ['not a review', '{"kind":"Pod"}', 'INVALID_REVIEW'],
    ['a JSON array', '[]', 'INVALID_REVIEW'],
    ['an unknown apiVersion', '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2","request":{"uid":"1"}}', 'INVALID_REVIEW'],
    ['no uid', '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}', 'INVALID_REVIEW'],
  ])('%s: 400 with a JSON error', async (_what, body, code) => {
    const res = await post(body, 'application/json');
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code, error: expect.any(String) });
  });

  it('a Pod CREATE whose object is malformed: 400 naming the field', async () => {
    const pod = apiserverPod((p) => {
      (p.spec!.containers[0] as unknown as Record<string, unknown>).volumeMounts = 'oops';
    });
    const res = await post(JSON.stringify(admissionReview(pod)), 'application/json');
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: expect.stringContaining('request.object.spec.containers[0].volumeMounts') });
  });

  it('accepts application/json with parameters; refuses a missing or other Content-Type with 415', async () => {
    const ok = await post(JSON.stringify(admissionReview(apiserverPod())), 'application/json; charset=utf-8');
    expect(ok.status).toBe(200);
    expect((await post('{}', 'text/plain')).status).toBe(415);
    const none = await post('{}');
    expect(none.status).toBe(415);
    expect(none.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('a body over 3 MiB gets 413; just under is accepted', async () => {
    const big = admissionReview(apiserverPod((p) => {
      p.metadata!.annotations!.filler = 'x'.repeat(3 * 1024 * 1024);
    }));
    const res = await post(JSON.stringify(big), 'application/json');
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ code: 'BODY_TOO_LARGE' });
    const under = admissionReview(apiserverPod((p) => {
      p.metadata!.annotations!.filler = 'x'.repeat(3 * 1024 * 1024 - 8 * 1024);
    }));
    expect((await post(JSON.stringify(under), 'application/json')).status).toBe(200);
  });

  it('unknown routes get a JSON 404; health and readiness answer 200', async () => {
    const res = await httpsRequest(`${server.url}/nope`, server.ca);
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ code: 'NOT_FOUND' });
    expect((await httpsRequest(`${server.url}/healthz`, server.ca)).status).toBe(200);
    expect((await httpsRequest(`${server.url}/readyz`, server.ca)).status).toBe(200);
  });

  it("the quick start's opt-in review (test/fixtures/admission-review-opt-in.json) is injected", async () => {
    const review = JSON.parse(readFileSync(new URL('../fixtures/admission-review-opt-in.json', import.meta.url), 'utf8')) as unknown;
    const res = await postReview(server, review);
    const body = res.json() as { response: { patch?: string; auditAnnotations?: Record<string, string> } };
    expect(body.response.auditAnnotations).toMatchObject({ decision: 'injected' });
    expect(decodePatch(body.response.patch!).map((op) => op.path)).toContain('/metadata/annotations/sidecar-injector.io~1status');
  });

  it('GET /mutate is 405 with Allow: POST, as HTTP says, not a 404', async () => {
    const res = await httpsRequest(`${server.url}/mutate`, server.ca);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.json()).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });

  it('refuses TLS below 1.2 and clients that do not trust the CA', async () => {
    await expect(httpsRequest(`${server.url}/healthz`, '')).rejects.toThrow();
    await expect(
      new Promise((resolve, reject) => {
        const req = request(`${server.url}/healthz`, { ca: server.ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', agent: false }, resolve);
        req.on('error', reject);
        req.end();
      }),
    ).rejects.toThrow();
  });

  it('an internal error fails closed with code 500 in the review, is logged and counted as error', async () => {
    const broken = new Proxy({} as ReturnType<typeof testConfig>, {
      get() {
        throw new Error('config exploded');
      },
    });
    server.setConfig(broken);
    try {
      const review = admissionReview(apiserverPod());
      const answer = await admit(review);
      expect(answer.response).toMatchObject({ allowed: false, status: { code: 500 } });
      expect(answer.response.status!.message).toContain('config exploded');
      const line = server.logs.find((l) => l.uid === (review.request as { uid: string }).uid && l.msg === 'admission');
      expect(line).toMatchObject({ decision: 'error' });
      expect(server.logs.some((l) => l.msg === 'admission failed' && l.level === 50)).toBe(true);
    } finally {
      server.setConfig(testConfig());
    }
  });

  it('the server still answers after all of the above', async () => {
    await admitAndApply(apiserverPod());
  });
});
