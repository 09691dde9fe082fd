import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { httpsRequest } from '../helpers/server.js';
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
});
