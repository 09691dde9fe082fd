/**
 * The container image, replayed without Docker (no engine on these
 * machines): the final stage's COPY lines of the Dockerfile are read and
 * done into a temp directory, the deps stage's `npm ci --omit=dev
 * --ignore-scripts` is run there, and the CLI is run from it as the image's
 * numeric user with the directory read-only. A dev dependency imported at
 * run time, or a write to the working directory, fails here.
 * Not replayed: the build stage (the suite's own `npm run build` made dist/
 * from the same sources) and the base image.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeApiServer } from '../fake-apiserver/server.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UID = 65532;
const asRoot = process.getuid?.() === 0;
if (!asRoot) process.stderr.write('NOTE: not root: the image replay runs as the current user instead of uid 65532\n');

interface Stage {
  name: string;
  lines: string[];
}

function stages(dockerfile: string): Stage[] {
  const out: Stage[] = [];
  for (const raw of dockerfile.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ name: from[1] ?? '', lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

let app: string;
const runAs = (args: string[], opts: { cwd?: string } = {}) =>
  spawnSync(asRoot ? 'setpriv' : process.execPath, asRoot ? [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, ...args] : args, {
    cwd: opts.cwd ?? app,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOME: '/nonexistent' },
  });

/** The same, as a child process that does not block this one. */
const start = (args: string[]) =>
  spawn(asRoot ? 'setpriv' : process.execPath, asRoot ? [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, ...args] : args, {
    cwd: app,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOME: '/nonexistent' },
  });

function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

let before: string[];
let depsStage: string;

beforeAll(() => {
  const all = stages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const final = all.at(-1)!;
  const deps = all.find((s) => s.name === 'deps')!;
  app = join(mkdtempSync(join(tmpdir(), 'image-')), 'app');
  mkdirSync(app);
  for (const line of final.lines) {
    const copy = /^COPY\s+(?:--from=(\S+)\s+)?(\S+)\s+(\S+)$/.exec(line);
    if (!copy) continue;
    const [, from, src, dest] = copy as unknown as [string, string | undefined, string, string];
    // `COPY file ./` puts the file into the directory, as Docker does.
    const target = dest.endsWith('/') ? resolve(app, dest, basename(src)) : resolve(app, dest);
    mkdirSync(dirname(target), { recursive: true });
    if (from === 'build') {
      cpSync(join(ROOT, src.replace(/^\/src\//, '')), target, { recursive: true });
    } else if (from === 'deps') {
      // The deps stage: its COPYs, then its RUN (npm ci --omit=dev --ignore-scripts), in a directory of its own.
      const stage = mkdtempSync(join(tmpdir(), 'image-deps-'));
      for (const l of deps.lines) {
        const c = /^COPY\s+(.+)\s+(\S+)$/.exec(l);
        if (c) for (const f of c[1]!.split(/\s+/)) cpSync(join(ROOT, f), join(stage, f));
        const run = /^RUN\s+(.+)$/.exec(l);
        if (run) execSync(run[1]!, { cwd: stage, stdio: 'ignore' });
      }
      depsStage = stage;
      cpSync(join(stage, src.replace(/^\/app\//, '')), target, { recursive: true });
    } else {
      cpSync(join(ROOT, src), target, { recursive: true });
    }
  }
  // Owned by root, read-only for everyone: the image's user can read and run, not write.
  chmodSync(dirname(app), 0o755);
  execSync(`chmod -R a-w,a+rX ${JSON.stringify(app)}`);
  before = listing(app);
}, 180_000);

afterAll(() => {
  execSync(`chmod -R u+w ${JSON.stringify(dirname(app))}`);
});

describe('the image, replayed', () => {
  it('reaches a cluster through the client-node bundle with production dependencies only (certs --secret)', async () => {
    const fake = new FakeApiServer();
    await fake.start();
    try {
      fake.namespace('sidecar-injector');
      const dir = mkdtempSync(join(tmpdir(), 'image-kube-'));
      chmodSync(dir, 0o755);
      const kubeconfig = fake.kubeconfig(dir);
      chmodSync(kubeconfig, 0o644);
      // Asynchronously: the fake API server answers from this process.
      const child = start(['bin/sidecar-injector.js', 'certs', '--service', 'sidecar-injector', '--namespace', 'sidecar-injector', '--secret', 'tls', '--kubeconfig', kubeconfig]);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((r) => child.on('close', r));
      expect(stderr).toContain('created Secret sidecar-injector/tls');
      expect(code).toBe(0);
    } finally {
      await fake.stop();
    }
  });

  it("the deps stage's RUN fails when the installed tree is incomplete, as after npm's silent network failure", () => {
    const run = stages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
      .find((st) => st.name === 'deps')!
      .lines.map((l) => /^RUN\s+(.+)$/.exec(l)?.[1])
      .find((r) => r !== undefined)!;
    const check = run.split('&&').slice(1).join('&&').trim();
    expect(check).toMatch(/^npm ls /);
    const broken = mkdtempSync(join(tmpdir(), 'image-broken-'));
    cpSync(depsStage, broken, { recursive: true });
    expect(spawnSync('sh', ['-c', check], { cwd: broken }).status).toBe(0);
    execSync(`rm -rf ${JSON.stringify(join(broken, 'node_modules', 'yaml'))}`);
    expect(spawnSync('sh', ['-c', check], { cwd: broken }).status).not.toBe(0);
  });

  it('holds production dependencies and the build only', () => {
    expect(existsSync(join(app, 'node_modules', 'express'))).toBe(true);
    for (const dev of ['typescript', 'jest', 'esbuild', 'ts-jest', 'eslint']) expect({ dev, present: existsSync(join(app, 'node_modules', dev)) }).toEqual({ dev, present: false });
    expect(existsSync(join(app, 'src'))).toBe(false);
    expect(existsSync(join(app, 'dist', 'vendor', 'client-node.js'))).toBe(true);
  });

  it('--help and --version work as the unprivileged user from a read-only directory', () => {
    const help = runAs(['bin/sidecar-injector.js', '--help']);
    expect(help.stderr).toBe('');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('audit');
    const version = runAs(['bin/sidecar-injector.js', '--version']);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('certs writes only where it is told; serve answers a TLS admission and exits 0 on SIGTERM; nothing in /app changed', async () => {
    const out = mkdtempSync(join(tmpdir(), 'image-certs-'));
    if (asRoot) chownSync(out, UID, UID);
    const certs = runAs(['bin/sidecar-injector.js', 'certs', '--service', 'sidecar-injector', '--namespace', 'sidecar-injector', '--out', out, '--dev']);
    expect(certs.stderr).toContain('wrote');
    expect(certs.status).toBe(0);
    expect(statSync(join(out, 'tls.key')).mode & 0o777).toBe(0o600);

    // Denied a write to /app: the replayed image is really read-only for this user.
    expect(runAs(['-e', "require('fs').writeFileSync('x', '')"]).status).not.toBe(0);

    const args = ['bin/sidecar-injector.js', 'serve', '--tls-cert', join(out, 'tls.crt'), '--tls-key', join(out, 'tls.key'), '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--shutdown-delay', '0'];
    const child = start(args);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<number>((resolvePort, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /"port":(\d+),.*"msg":"serving \/mutate over HTTPS"/.exec(stdout);
        if (m) resolvePort(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    const answer = await new Promise<{ response: { allowed: boolean; patch?: string } }>((resolveAnswer, reject) => {
      const req = request({ host: '127.0.0.1', port, servername: 'localhost', path: '/mutate', method: 'POST', ca: readFileSync(join(out, 'ca.crt')), headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolveAnswer(JSON.parse(text) as { response: { allowed: boolean; patch?: string } }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(admissionReview(apiserverPod())));
    });
    expect(answer.response.allowed).toBe(true);
    expect(Buffer.from(answer.response.patch!, 'base64').toString()).toContain('log-shipper');
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(listing(app)).toEqual(before);
  }, 30_000);
});
