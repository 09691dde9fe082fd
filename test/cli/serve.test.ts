import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { httpsRequest } from '../helpers/server.js';
import { createServer, type Server } from 'node:net';
import { runCli, startCli } from '../helpers/process.js';

describe('sidecar-injector serve (the process npm start runs)', () => {
  it('creates development certificates when missing, serves /mutate with the example config, exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-'));
    const cert = join(dir, 'certs', 'tls.crt');
    const server = startCli(['serve', '--dev-certs', '--tls-cert', cert, '--tls-key', join(dir, 'certs', 'tls.key'), '--port', '0', '--metrics-port', '0', '--shutdown-delay', '0', '--host', '127.0.0.1']);
    try {
      const ready = await server.waitForLog((l) => l.msg === 'serving /mutate over HTTPS');
      expect(statSync(join(dir, 'certs', 'tls.key')).mode & 0o777).toBe(0o600);
      const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
      const url = `https://localhost:${String(ready.port)}`;
      const res = await httpsRequest(`${url}/mutate`, ca, {
        method: 'POST',
        body: JSON.stringify(admissionReview(apiserverPod())),
        headers: { 'content-type': 'application/json' },
      });
      const body = res.json() as { response: { patch?: string; auditAnnotations: Record<string, string> } };
      expect(body.response.auditAnnotations).toEqual({ decision: 'injected', profiles: 'log-shipper' });
      expect(Buffer.from(body.response.patch!, 'base64').toString()).toContain('fluent-bit');
      await server.waitForLog((l) => l.msg === 'admission' && l.decision === 'injected');
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  });

  it('refuses to start on a bad config, naming each problem with its path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-bad-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'profiles:\n  p:\n    containers:\n      - name: x\n');
    const out = await runCli(['serve', '--config', config, '--port', '0', '--metrics-port', '0']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`${config}: profiles.p.containers[0].image: required`);
  });

  it('takes flags from SIDECAR_INJECTOR_* variables, a flag winning over its variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-env-'));
    const out = await runCli(['serve', '--metrics-port', '0', '--port', '0', '--tls-cert', join(dir, 'none.crt'), '--tls-key', join(dir, 'none.key')], {
      env: { SIDECAR_INJECTOR_CONFIG: join(dir, 'missing.yaml'), SIDECAR_INJECTOR_PORT: 'not-a-port' },
    });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`${join(dir, 'missing.yaml')}: cannot read: ENOENT`);
  });

  it('unknown flags are errors, not ignored', async () => {
    const out = await runCli(['serve', '--prot', '1']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("Unknown option '--prot'");
  });

  const quickArgs = (dir: string) => [
    'serve', '--dev-certs', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'),
    '--port', '0', '--metrics-port', '0', '--shutdown-delay', '0', '--host', '127.0.0.1',
  ];

  // Round 2's race: the handlers went in after "serving", so a SIGTERM right then killed the process.
  it('a SIGTERM the moment it serves shuts down cleanly (exit 0), never the default kill', async () => {
    const server = startCli(quickArgs(mkdtempSync(join(tmpdir(), 'serve-sig-'))));
    await server.waitForLog((l) => l.msg === 'serving /mutate over HTTPS');
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['signal received', 'shut down']));
  });

  it('a SIGTERM while starting waits for the start, then shuts down cleanly', async () => {
    const server = startCli(quickArgs(mkdtempSync(join(tmpdir(), 'serve-sig-'))));
    // Logged before the listeners open; the handlers are already in.
    await server.waitForLog((l) => l.msg === 'created development certificates (CA in ca.crt)');
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const msgs = server.lines.map((l) => l.msg);
    expect(msgs).toContain('serving /mutate over HTTPS');
    expect(msgs.indexOf('shut down')).toBeGreaterThan(msgs.indexOf('signal received'));
  });

  describe('a busy port is one line naming the flag and the address, exit 1', () => {
    let busy: Server;
    let port: number;
    beforeAll(async () => {
      busy = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
      port = (busy.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => busy.close(() => r())));

    it.each(['port', 'metrics-port'])('--%s', async (flag) => {
      const dir = mkdtempSync(join(tmpdir(), 'serve-busy-'));
      const args = quickArgs(dir);
      args[args.indexOf(`--${flag}`) + 1] = String(port);
      const out = await runCli(args);
      expect(out.code).toBe(1);
      expect(out.stderr).toBe(`sidecar-injector: cannot start: --${flag} ${port}: cannot listen on 127.0.0.1:${port}: address already in use\n`);
    });
  });
});
