/**
 * `POST /mutate` is answered the same whichever way it is routed: directly
 * (as the API server sends it, with `?timeout=`) or through express (the
 * other spellings its router matches); while draining, both say
 * `Connection: close`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { MutateSummary } from '../../src/core/mutate.js';
import { createApp } from '../../src/server/app.js';
import { listenHttps, type HttpsListener } from '../../src/server/listen.js';
import { loadTlsPair } from '../../src/tls/load.js';
import { testConfig } from '../helpers/configs.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { httpsRequest, testCertificates } from '../helpers/server.js';

let listener: HttpsListener;
let ca: string;
let ready = true;
const admissions: MutateSummary['decision'][] = [];
const logs: { msg?: string; uid?: string }[] = [];

beforeAll(async () => {
  const { dir, set } = await testCertificates();
  const tls = await loadTlsPair(join(dir, 'tls.crt'), join(dir, 'tls.key'));
  if (!tls.ok) throw new Error(tls.error);
  ca = set.caCert;
  const config = testConfig();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as { msg?: string; uid?: string });
      cb();
    },
  });
  const app = createApp({
    config: () => config,
    namespaceLabels: () => undefined,
    server: () => ({ nativeSidecars: true }),
    logger: pino({ level: 'info' }, sink),
    now: () => performance.now(),
    ready: () => ready,
    onAdmission: (decision) => admissions.push(decision),
  });
  listener = await listenHttps(app, { port: 0, host: '127.0.0.1', tls: tls.pair });
});
afterAll(async () => {
  await listener.drain(1000);
});

function post(path: string) {
  const review = admissionReview(apiserverPod());
  const uid = (review.request as { uid: string }).uid;
  const sent = httpsRequest(`https://localhost:${listener.port}${path}`, ca, {
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
    expect(logs.filter((l) => l.uid === uid && l.msg === 'admission')).toHaveLength(1);
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
