import { describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { runCli, startCli } from '../helpers/process.js';

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
if (!hasOpenssl) throw new Error('openssl is required for the certificate tests (apt-get install openssl)');

const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });

describe('certs', () => {
  it('writes a CA and a serving certificate that openssl verifies, with the SPEC SANs, and prints the caBundle', async () => {
    const out = mkdtempSync(join(tmpdir(), 'certs-'));
    const res = await runCli(['certs', '--service', 'sidecar-injector', '--namespace', 'platform', '--out', out, '--days', '30']);
    expect(res.code).toBe(0);
    const ca = readFileSync(join(out, 'ca.crt'), 'utf8');
    expect(Buffer.from(res.stdout.trim(), 'base64').toString()).toBe(ca);

    expect(openssl('verify', '-CAfile', join(out, 'ca.crt'), join(out, 'tls.crt')).trim()).toBe(`${join(out, 'tls.crt')}: OK`);
    const leaf = openssl('x509', '-in', join(out, 'tls.crt'), '-noout', '-text');
    expect(leaf).toContain(
      'DNS:sidecar-injector, DNS:sidecar-injector.platform, DNS:sidecar-injector.platform.svc, DNS:sidecar-injector.platform.svc.cluster.local',
    );
    expect(leaf).not.toContain('localhost');
    expect(leaf).toContain('TLS Web Server Authentication');
    expect(leaf).toContain('CA:FALSE');
    expect(leaf).toContain('ASN1 OID: prime256v1');
    expect(openssl('x509', '-in', join(out, 'ca.crt'), '-noout', '-text')).toContain('CA:TRUE');
    const days = (Date.parse(openssl('x509', '-in', join(out, 'tls.crt'), '-noout', '-enddate').split('=')[1]!) - Date.now()) / 86_400_000;
    expect(Math.round(days)).toBe(30);

    for (const key of ['ca.key', 'tls.key']) expect(statSync(join(out, key)).mode & 0o777).toBe(0o600);
    // The key matches the certificate.
    const pubFromKey = openssl('pkey', '-in', join(out, 'tls.key'), '-pubout');
    expect(openssl('x509', '-in', join(out, 'tls.crt'), '-noout', '-pubkey')).toBe(pubFromKey);
  });

  it('refuses to replace existing files (naming them, exit 1) unless --force', async () => {
    const out = mkdtempSync(join(tmpdir(), 'certs-again-'));
    const args = ['certs', '--service', 'hook', '--namespace', 'ns', '--out', out];
    expect((await runCli(args)).code).toBe(0);
    const ca = readFileSync(join(out, 'ca.key'), 'utf8');
    const again = await runCli(args);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(['ca.crt', 'ca.key', 'tls.crt', 'tls.key'].map((f) => join(out, f)).join(', '));
    expect(again.stderr).toContain('--force');
    expect(readFileSync(join(out, 'ca.key'), 'utf8')).toBe(ca);

    const forced = await runCli([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(out, 'ca.key'), 'utf8')).not.toBe(ca);
  });

  it('--dev adds localhost and 127.0.0.1, and serve presents the pair in a verified TLS handshake', async () => {
    const out = mkdtempSync(join(tmpdir(), 'certs-dev-'));
    const res = await runCli(['certs', '--service', 'hook', '--namespace', 'ns', '--out', out, '--dev']);
    expect(res.code).toBe(0);
    expect(openssl('x509', '-in', join(out, 'tls.crt'), '-noout', '-ext', 'subjectAltName')).toContain('DNS:localhost, IP Address:127.0.0.1');

    const server = startCli(['serve', '--tls-cert', join(out, 'tls.crt'), '--tls-key', join(out, 'tls.key'), '--port', '0', '--metrics-port', '0', '--shutdown-delay', '0', '--host', '127.0.0.1']);
    try {
      const ready = await server.waitForLog((l) => l.msg === 'serving /mutate over HTTPS');
      const ca = readFileSync(join(out, 'ca.crt'));
      for (const servername of ['hook.ns.svc', 'localhost']) {
        const peer = await new Promise<{ authorized: boolean; subject: string }>((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: Number(ready.port), ca, servername }, () => {
            resolve({ authorized: socket.authorized, subject: socket.getPeerCertificate().subject.CN as string });
            socket.end();
          });
          socket.on('error', reject);
        });
        expect(peer).toEqual({ authorized: true, subject: 'hook.ns.svc' });
      }
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('needs --service, --namespace and --out, as DNS labels', async () => {
    const res = await runCli(['certs', '--service', 'x']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('certs needs --namespace');
    const bad = await runCli(['certs', '--service', 'Bad_Name', '--namespace', 'ns', '--out', '/tmp/x']);
    expect(bad.stderr).toContain('--service: "Bad_Name" is not a DNS label');
  });
});

describe('validate-config', () => {
  it('exits 0 on a good file', async () => {
    const res = await runCli(['validate-config', 'config/example.yaml']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^config\/example.yaml: valid \(revision [0-9a-f]{16}; profiles: log-shipper, nginx-exporter\)\n$/);
  });

  it('prints every problem with its path and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-'));
    const file = join(dir, 'bad.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'policy: maybe\nprofiles:\n  p:\n    containers: [{ name: a }]\n    overrides: { resources: yes }\n');
    const res = await runCli(['validate-config', file]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toEqual([
      `${file}: policy: must be one of: opt-in, opt-out`,
      `${file}: profiles.p.containers[0].image: required`,
      `${file}: profiles.p.overrides.resources: must be a boolean`,
    ]);
  });
});

describe('the command line', () => {
  it('--version prints the package version; --help lists the commands', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect((await runCli(['--version'])).stdout).toBe(`${pkg.version}\n`);
    const help = await runCli(['--help']);
    for (const cmd of ['serve', 'inject -f FILE|-', 'certs', 'validate-config FILE']) expect(help.stdout).toContain(cmd);
  });

  it.each(['serve', 'inject', 'certs', 'validate-config'])('%s --help shows usage, an example and the flags', async (cmd) => {
    const res = await runCli([cmd, '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`Usage: sidecar-injector ${cmd}`);
    expect(res.stdout).toContain('Example:');
    expect(res.stdout).toContain('--help');
  });

  it('unknown commands and flags are errors', async () => {
    expect(await runCli(['frobnicate'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "frobnicate"') });
    expect(await runCli(['certs', '--servce', 'x'])).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--servce'") });
  });
});
