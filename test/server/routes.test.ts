/**
 * `POST /mutate` is answered the same whichever way it is routed: directly
 * (as the API server sends it, with `?timeout=`) or through express (the
 * other spellings its router matches); while draining, both say
 * `Connection: close`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { MutateSummary } from '../../src/core/mutate.js';
import { testConfig } from '../helpers/configs.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { httpsRequest, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let ready = true;
const admissions: MutateSummary['decision'][] = [];

beforeAll(async () => {
  server = await startTestServer(testConfig(), undefined, {}, { ready: () => ready, onAdmission: (decision) => admissions.push(decision) });
});
afterAll(async () => {
  await server.close();
});

function post(path: string) {
  const review = admissionReview(apiserverPod());
  const uid = (review.request as { uid: string }).uid;
  const sent = httpsRequest(`${server.url}${path}`, server.ca, {
    method: 'POST',
    body: JSON.stringify(review),
    headers: { 'content-type': 'application/json' },
  });
  return { uid, sent };
}

describe('POST /mutate, routed directly or through express', () => {
  it.each(['/mutate', '/mutate?timeout=10s', '/mutate/', '/Mutate'])('%s: injected, counted and logged once', async (path) => {
    admissions.length = 0;
    const { uid, sent } = await post(path);
    const res = await sent;
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const { response } = res.json() as { response: { uid: string; patchType?: string; auditAnnotations?: Record<string, string> } };
    expect(response).toMatchObject({ uid, patchType: 'JSONPatch', auditAnnotations: { decision: 'injected' } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(admissions).toEqual(['injected']);
    expect(server.logs.filter((l) => l.uid === uid && l.msg === 'admission')).toHaveLength(1);
  });

  it('while draining, the answer on either path carries Connection: close', async () => {
    ready = false;
    try {
      for (const path of ['/mutate?timeout=10s', '/mutate/']) {
        const res = await post(path).sent;
        expect(res.status).toBe(200);
        expect(res.headers.connection).toBe('close');
      }
    } finally {
      ready = true;
    }
  });
});
