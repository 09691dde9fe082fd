/** A real HTTPS webhook server on a loopback port, with a CA made for the test and verification on. */
import { request } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { CompiledConfig } from '../../src/core/config.js';
import type { NamespaceLabels } from '../../src/core/mutate.js';
import { createApp, type AppDeps } from '../../src/server/app.js';
import { listenHttps, type HttpsListener, type Timeouts } from '../../src/server/listen.js';
import { generateCertificates, writeCertificates, type CertificateSet } from '../../src/tls/generate.js';
import { loadTlsPair } from '../../src/tls/load.js';

export interface TestServer {
  url: string;
  port: number;
  ca: string;
  logs: Record<string, unknown>[];
  listener: HttpsListener;
  setConfig(c: CompiledConfig): void;
  close(): Promise<void>;
}

let certs: Promise<{ dir: string; set: CertificateSet }> | undefined;

/** One CA and serving pair per test file (generation is the slow part). */
export function testCertificates(): Promise<{ dir: string; set: CertificateSet }> {
  certs ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecar-injector-certs-'));
    const set = await generateCertificates({ service: 'sidecar-injector', namespace: 'test', dev: true, days: 1 });
    await writeCertificates(dir, set);
    return { dir, set };
  })();
  return certs;
}

/** The tests' API server is a current one unless a test says otherwise. */
const NATIVE_SIDECARS = { nativeSidecars: true };

export async function startTestServer(
  config: CompiledConfig,
  namespaceLabels: NamespaceLabels = () => undefined,
  timeouts: Timeouts = {},
  deps: Partial<Pick<AppDeps, 'ready' | 'onAdmission'>> = {},
): Promise<TestServer> {
  const { dir, set } = await testCertificates();
  const tls = await loadTlsPair(join(dir, 'tls.crt'), join(dir, 'tls.key'));
  if (!tls.ok) throw new Error(tls.error);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  let current = config;
  const app = createApp({
    config: () => current,
    namespaceLabels,
    server: () => NATIVE_SIDECARS,
    logger: pino({ level: 'info' }, sink),
    now: () => performance.now(),
    ready: () => true,
    ...deps,
  });
  const listener = await listenHttps(app, { port: 0, host: '127.0.0.1', tls: tls.pair, ...timeouts });
  return {
    url: `https://localhost:${listener.port}`,
    port: listener.port,
    ca: set.caCert,
    logs,
    listener,
    setConfig: (c) => {
      current = c;
    },
    close: () => listener.drain(1000),
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

/** An HTTPS request that verifies the server against `ca` (rejectUnauthorized stays on). */
export function httpsRequest(
  url: string,
  ca: string,
  opts: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', ca, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
      });
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

export function postReview(server: TestServer, review: unknown, contentType = 'application/json'): Promise<HttpResult> {
  return httpsRequest(`${server.url}/mutate`, server.ca, {
    method: 'POST',
    body: JSON.stringify(review),
    headers: { 'content-type': contentType },
  });
}
