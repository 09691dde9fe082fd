/**
 * Operations against the real process and real files: metrics, config and
 * certificate reload through kubelet-style symlink swaps, graceful shutdown.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { Agent, request, type RequestOptions } from 'node:https';
import { writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { generateCertificates, type CertificateSet } from '../../src/tls/generate.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { TEST_CONFIG_YAML } from '../helpers/configs.js';
import { eventually, parsePrometheus, sampleValue } from '../helpers/ops.js';
import { startServe, stopServeProcesses, type ServeProcess } from '../helpers/serve-process.js';

afterEach(() => stopServeProcesses());

const pairs = new Map<string, Promise<CertificateSet>>();
const pair = (name: string) => {
  if (!pairs.has(name)) pairs.set(name, generateCertificates({ service: 'sidecar-injector', namespace: 'ops', dev: true, days: 1 }));
  return pairs.get(name)!;
};
const tlsFiles = (p: CertificateSet) => ({ 'tls.crt': p.cert, 'tls.key': p.key });

interface Server extends ServeProcess {
  ca: string[];
}

async function startServer(extraArgs: string[] = []): Promise<Server> {
  const [a, b] = await Promise.all([pair('a'), pair('b')]);
  const started = await startServe({ tls: tlsFiles(a), args: extraArgs });
  return { ...started, ca: [a.caCert, b.caCert] };
}

interface Answer {
  status: number;
  body: string;
  /** The server certificate this response came over (read before a keep-alive agent takes the socket back). */
  serial: string;
  certDer: string;
  reused: boolean;
}

const peer = (socket: TLSSocket) => {
  const cert = socket.getPeerCertificate();
  return { serial: cert.serialNumber, certDer: cert.raw.toString('base64') };
};

function call(s: Server, path: string, opts: RequestOptions & { body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', servername: 'localhost', port: s.port, path, ca: s.ca, agent: false, ...opts },
      (res) => {
        const cert = peer(res.socket as TLSSocket);
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...cert, reused: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const admit = (s: Server, pod = apiserverPod(), agent?: Agent) =>
  call(s, '/mutate', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(admissionReview(pod)),
    ...(agent ? { agent } : {}),
  });

const patchOf = (a: Answer) => {
  const patch = (JSON.parse(a.body) as { response: { patch?: string } }).response.patch;
  return patch ? Buffer.from(patch, 'base64').toString() : '';
};

async function scrape(s: Server) {
  const res = await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parsePrometheus(await res.text());
}

describe('metrics', () => {
  it('counts admissions by decision, times them, and shows the config revision and process defaults', async () => {
    const s = await startServer();
    expect((await admit(s)).status).toBe(200);
    const skipped = apiserverPod((p) => {
      delete p.metadata!.annotations!['sidecar-injector.io/inject'];
    });
    expect((await admit(s, skipped)).status).toBe(200);
    expect((await call(s, '/mutate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).status).toBe(400);

    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_admissions_total', { decision: 'injected' })).toBe(1);
    expect(sampleValue(m, 'sidecar_injector_admissions_total', { decision: 'skipped' })).toBe(1);
    expect(sampleValue(m, 'sidecar_injector_admissions_total', { decision: 'error' })).toBe(1);
    expect(sampleValue(m, 'sidecar_injector_admissions_total', { decision: 'denied' })).toBe(0);
    expect(sampleValue(m, 'sidecar_injector_admission_duration_seconds_count')).toBe(3);
    expect(sampleValue(m, 'sidecar_injector_admission_duration_seconds_bucket', { le: '0.0001' })).toBeDefined();
    expect(sampleValue(m, 'sidecar_injector_admission_duration_seconds_bucket', { le: '10' })).toBe(3);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'success' })).toBe(0);
    expect(sampleValue(m, 'sidecar_injector_tls_reloads_total', { result: 'failure' })).toBe(0);
    const revision = m.find((x) => x.name === 'sidecar_injector_config_revision');
    expect(revision?.labels.revision).toMatch(/^[0-9a-f]{16}$/);
    expect(sampleValue(m, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sampleValue(m, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    for (const path of ['/healthz', '/readyz']) {
      expect((await fetch(`http://127.0.0.1:${s.metricsPort}${path}`)).status).toBe(200);
      expect((await call(s, path)).status).toBe(200);
    }
  });

  it('--metrics-port 0 turns the metrics listener off', async () => {
    const s = await startServer(['--metrics-port', '0']);
    const line = s.proc.lines.find((l) => l.msg === 'serving /mutate over HTTPS');
    expect(line?.metricsPort).toBeNull();
    await expect(fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).rejects.toThrow();
  });
});

describe('config hot reload', () => {
  const withImage = (image: string) => TEST_CONFIG_YAML.replace('registry.example.com/logging/agent:1.0', image);

  it('a ConfigMap-style symlink swap is in force for the next admission; a broken file keeps the last good one', async () => {
    const s = await startServer();
    expect(patchOf(await admit(s))).toContain('agent:1.0');

    s.config.update({ 'config.yaml': withImage('registry.example.com/logging/agent:2.0') });
    const reloaded = await s.proc.waitForLog((l) => l.msg === 'config reloaded');
    expect(patchOf(await admit(s))).toContain('agent:2.0');
    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'success' })).toBe(1);
    expect(m.find((x) => x.name === 'sidecar_injector_config_revision')?.labels.revision).toBe(reloaded.revision);

    s.config.update({ 'config.yaml': 'profiles:\n  log-shipper:\n    containers: [{ name: Bad }]\n' });
    const rejected = await s.proc.waitForLog((l) => l.msg === 'config reload rejected; keeping the last good config');
    expect(rejected.errors).toEqual(expect.arrayContaining([expect.stringContaining('profiles.log-shipper.containers[0].image: required')]));
    expect(rejected.level).toBe(50);
    expect(patchOf(await admit(s))).toContain('agent:2.0');
    expect(sampleValue(await scrape(s), 'sidecar_injector_config_reloads_total', { result: 'failure' })).toBe(1);
    expect((await call(s, '/readyz')).status).toBe(200);
  });

  it('an in-place write is picked up too', async () => {
    const s = await startServer();
    // Write through the symlinks into the current generation, as an editor would.
    writeFileSync(s.config.path('config.yaml'), withImage('registry.example.com/logging/agent:3.0'));
    await s.proc.waitForLog((l) => l.msg === 'config reloaded');
    expect(patchOf(await admit(s))).toContain('agent:3.0');
  });
});

describe('certificate hot reload', () => {
  const der = (pem: string) => pem.replace(/-----[A-Z ]+-----|\n/g, '');

  it('new connections get the rotated certificate; an open keep-alive connection keeps working', async () => {
    const s = await startServer();
    const a = await pair('a');
    const b = await pair('b');
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: s.ca, servername: 'localhost' });
    try {
      const first = await admit(s, apiserverPod(), agent);
      const serialA = first.serial;

      s.tls.update(tlsFiles(b));
      await s.proc.waitForLog((l) => l.msg === 'certificate reloaded');

      const fresh = await call(s, '/healthz');
      expect(fresh.serial).not.toBe(serialA);
      expect(fresh.certDer).toBe(der(b.cert));

      const old = await admit(s, apiserverPod(), agent);
      expect(old.reused).toBe(true);
      expect(old.status).toBe(200);
      expect(old.serial).toBe(serialA);
      expect(first.certDer).toBe(der(a.cert));
      expect(sampleValue(await scrape(s), 'sidecar_injector_tls_reloads_total', { result: 'success' })).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('a mismatched pair is rejected, logged and counted; the old certificate stays', async () => {
    const s = await startServer();
    const a = await pair('a');
    const b = await pair('b');
    s.tls.update({ 'tls.crt': b.cert, 'tls.key': a.key });
    const rejected = await s.proc.waitForLog((l) => l.msg === 'certificate reload rejected; keeping the current pair');
    expect(String(rejected.error)).toContain('not a usable pair');
    const fresh = await call(s, '/healthz');
    expect(fresh.status).toBe(200);
    expect(fresh.certDer).toBe(a.cert.replace(/-----[A-Z ]+-----|\n/g, ''));
    expect(sampleValue(await scrape(s), 'sidecar_injector_tls_reloads_total', { result: 'failure' })).toBe(1);
  });
});

/**
 * Issue 32: one reload per change, in the counter and the log. "Exactly one"
 * without a fixed sleep: after the first reload, a second, distinguishable
 * change is made and its reload waited for; the counter and the log lines
 * must then be exactly two (a duplicate of the first would make three, or
 * show the first's revision twice).
 */
describe('one reload per change', () => {
  const withImage = (image: string) => TEST_CONFIG_YAML.replace('registry.example.com/logging/agent:1.0', image);
  const reloadLines = (s: Server, msg: string) => s.proc.lines.filter((l) => l.msg === msg);
  const counter = async (s: Server, name: string) => sampleValue(await scrape(s), name, { result: 'success' });
  const whenReloads = (s: Server, msg: string, n: number) => eventually(async () => (reloadLines(s, msg).length >= n ? true : undefined), `${n} "${msg}" lines`, 15_000);

  async function twoConfigChanges(change: (s: Server, yaml: string) => void) {
    const s = await startServer();
    change(s, withImage('registry.example.com/logging/agent:2.0'));
    await whenReloads(s, 'config reloaded', 1);
    const first = reloadLines(s, 'config reloaded')[0]!.revision;
    expect(await counter(s, 'sidecar_injector_config_reloads_total')).toBe(1);
    expect(patchOf(await admit(s))).toContain('agent:2.0');

    change(s, withImage('registry.example.com/logging/agent:3.0'));
    await whenReloads(s, 'config reloaded', 2);
    expect(patchOf(await admit(s))).toContain('agent:3.0');
    const lines = reloadLines(s, 'config reloaded');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.previous).toBe(first);
    expect(lines[1]!.revision).not.toBe(first);
    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'success' })).toBe(2);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'failure' })).toBe(0);
    expect(reloadLines(s, 'config reload rejected; keeping the last good config')).toEqual([]);
  }

  it('a ConfigMap-style ..data swap of the config: one reload each', async () => {
    await twoConfigChanges((s, yaml) => s.config.update({ 'config.yaml': yaml }));
  });

  it('an in-place write of the config: one reload each', async () => {
    await twoConfigChanges((s, yaml) => writeFileSync(s.config.path('config.yaml'), yaml));
  });

  it('a Secret-style ..data swap of the certificate: one reload each', async () => {
    const s = await startServer();
    const [a, b] = await Promise.all([pair('a'), pair('b')]);
    s.tls.update(tlsFiles(b));
    await whenReloads(s, 'certificate reloaded', 1);
    expect(await counter(s, 'sidecar_injector_tls_reloads_total')).toBe(1);
    expect((await call(s, '/healthz')).certDer).toBe(b.cert.replace(/-----[A-Z ]+-----|\n/g, ''));

    s.tls.update(tlsFiles(a));
    await whenReloads(s, 'certificate reloaded', 2);
    expect((await call(s, '/healthz')).certDer).toBe(a.cert.replace(/-----[A-Z ]+-----|\n/g, ''));
    expect(reloadLines(s, 'certificate reloaded')).toHaveLength(2);
    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_tls_reloads_total', { result: 'success' })).toBe(2);
    expect(sampleValue(m, 'sidecar_injector_tls_reloads_total', { result: 'failure' })).toBe(0);
  });

  it('a config put back to the one in force after a rejected change is not a reload', async () => {
    const s = await startServer();
    s.config.update({ 'config.yaml': 'profiles:\n  log-shipper:\n    containers: [{ name: Bad }]\n' });
    await whenReloads(s, 'config reload rejected; keeping the last good config', 1);
    s.config.update({ 'config.yaml': TEST_CONFIG_YAML }); // the bytes it started with
    const restored = await s.proc.waitForLog((l) => l.msg === 'config file is back to the config in force; nothing to reload');
    expect(restored.revision).toBe(s.proc.lines.find((l) => l.msg === 'serving /mutate over HTTPS')?.revision);
    s.config.update({ 'config.yaml': withImage('registry.example.com/logging/agent:4.0') });
    await whenReloads(s, 'config reloaded', 1);
    expect(patchOf(await admit(s))).toContain('agent:4.0');
    expect(reloadLines(s, 'config reloaded')).toHaveLength(1);
    const m = await scrape(s);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'success' })).toBe(1);
    expect(sampleValue(m, 'sidecar_injector_config_reloads_total', { result: 'failure' })).toBe(1);
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM: readiness 503 at once, accepts during the delay, then refuses; in-flight requests finish; exit 0', async () => {
    const s = await startServer(['--shutdown-delay', '0.5']);
    // An idle keep-alive connection that must be closed, not waited on.
    const agent = new Agent({ keepAlive: true, ca: s.ca, servername: 'localhost' });
    expect((await call(s, '/healthz', { agent })).status).toBe(200);
    const idleSocketClosed = new Promise<void>((resolve) => {
      const sockets = Object.values(agent.freeSockets).flat();
      sockets[0]!.once('close', () => resolve());
    });

    // Requests in flight: headers and half the body sent when the signal arrives.
    const body = JSON.stringify(admissionReview(apiserverPod()));
    const inflight = [0, 1, 2].map(() => {
      let sendRest!: () => void;
      const answer = new Promise<Answer>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1', servername: 'localhost', port: s.port, path: '/mutate', method: 'POST', ca: s.ca, agent: false,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            const cert = peer(res.socket as TLSSocket);
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ...cert, reused: false }));
          },
        );
        req.on('error', reject);
        req.write(body.slice(0, 100));
        sendRest = () => req.end(body.slice(100));
      });
      return { answer, sendRest: () => sendRest() };
    });
    await new Promise((r) => setTimeout(r, 100));

    s.proc.child.kill('SIGTERM');
    await eventually(async () => ((await fetch(`http://127.0.0.1:${s.metricsPort}/readyz`)).status === 503 ? true : undefined), 'readyz 503 on the metrics port', 1000);
    // Still accepting during the delay, and saying it is not ready.
    expect((await call(s, '/readyz')).status).toBe(503);

    await s.proc.waitForLog((l) => l.msg === 'no longer accepting; draining in-flight requests');
    // Refused, however it surfaces: a connection that reached the closing listener's backlog is dropped mid-handshake.
    await expect(call(s, '/healthz')).rejects.toThrow(/ECONNREFUSED|ECONNRESET|socket hang up|socket disconnected before secure TLS connection/);

    for (const r of inflight) r.sendRest();
    for (const r of inflight) {
      const answer = await r.answer;
      expect(answer.status).toBe(200);
      expect(patchOf(answer)).toContain('log-shipper');
    }
    await idleSocketClosed;
    expect(await s.proc.exited).toBe(0);
    agent.destroy();
  });

  it('a second signal exits at once', async () => {
    const s = await startServer(['--shutdown-delay', '20']);
    // The handlers are in before "serving" is logged, so this SIGTERM is always handled (never the default kill).
    s.proc.child.kill('SIGTERM');
    await s.proc.waitForLog((l) => l.msg === 'signal received');
    s.proc.child.kill('SIGINT');
    expect(await s.proc.exited).toBe(1);
  });
});

describe('stalled clients', () => {
  it('a client that stalls in its headers or body is cut off without delaying others', async () => {
    const { startTestServer } = await import('../helpers/server.js');
    const { testConfig } = await import('../helpers/configs.js');
    const { connect } = await import('node:tls');
    const server = await startTestServer(testConfig(), () => undefined, { headersTimeoutMs: 400, requestTimeoutMs: 800 });
    try {
      const open = (payload: string) =>
        new Promise<{ closedAfterMs: Promise<number>; response: () => string }>((resolve, reject) => {
          let received = '';
          const started = Date.now();
          const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.ca, servername: 'localhost' }, () => {
            socket.write(payload);
            resolve({ closedAfterMs: new Promise((r) => socket.on('close', () => r(Date.now() - started))), response: () => received });
          });
          socket.on('data', (d: Buffer) => (received += d.toString()));
          socket.on('error', reject);
        });
      const stalledHeaders = await open('POST /mutate HTTP/1.1\r\nHost: localhost\r\n');
      const stalledBody = await open('POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"kind":');

      // Others are served meanwhile.
      const { postReview } = await import('../helpers/server.js');
      expect((await postReview(server, admissionReview(apiserverPod()))).status).toBe(200);

      expect(await stalledHeaders.closedAfterMs).toBeLessThan(5000);
      expect(await stalledBody.closedAfterMs).toBeLessThan(5000);
      expect(stalledHeaders.response()).toMatch(/^HTTP\/1.1 408|^$/);
      expect(stalledBody.response()).toMatch(/^HTTP\/1.1 408|^$/);
    } finally {
      await server.close();
    }
  });
});

