/**
 * A real control plane for the end-to-end suite: etcd and kube-apiserver (the
 * binaries `scripts/tools.mjs` builds from the versions pinned in tools/, or
 * those named by ETCD and KUBE_APISERVER) on free loopback ports, in a
 * directory of their own that keeps their logs after the run. Only what it
 * started is stopped, by the child process handles it holds; a setup that
 * fails stops what it had started before it throws, and every control plane
 * a test file started is stopped when the file ends (an afterAll registered
 * here) or the process exits, whatever the file's own afterAll did.
 *
 * On request, kube-controller-manager beside them with only the named
 * controllers (`start({ controllers: ['clusterrole-aggregation'] })`: the
 * built-in admin, edit and view roles then gain the rules of ClusterRoles
 * labelled to aggregate into them, as in a real cluster), with the admin's
 * kubeconfig, on a free port, stopped first and by the same discipline.
 *
 * Plus a small HTTPS client with the admin token on one keep-alive
 * connection (the witness: what the API server stored), kubectl with the
 * admin kubeconfig, the audit log, and a restart of the API server alone.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from '@jest/globals';

/** Every process a control plane of this test process started and has not yet seen exit. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
const planes = new Set<ApiServer>();
// The file's own afterAll may never run its stop() (a beforeAll that threw before assigning).
afterAll(async () => {
  await Promise.all([...planes].map((p) => p.stop()));
});

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** The API server's `Warning` headers (admission warnings among them). */
  warnings: string[];
}

/** A port nothing on 127.0.0.1 listens on now (the kernel's choice for port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const tail = (file: string, lines = 20) => (existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)');

function binary(variable: 'KUBE_APISERVER' | 'ETCD'): string {
  const path = process.env[variable];
  if (!path) throw new Error(`${variable} is not set: run the suite with npm run e2e, which builds the pinned binaries (scripts/tools.mjs) and sets it`);
  return path;
}

/** KUBE_CONTROLLER_MANAGER, else the pinned one of the same Kubernetes line (scripts/tools.mjs: built the first time, then from the cache). */
async function controllerManagerBinary(): Promise<string> {
  const path = process.env.KUBE_CONTROLLER_MANAGER;
  if (path) return path;
  // @ts-expect-error: a plain .mjs build script, without type declarations
  const { tool } = (await import('../../scripts/tools.mjs')) as { tool: (name: string) => string };
  return tool('kube-controller-manager');
}

export interface ControlPlaneOptions {
  /** Run kube-controller-manager with only these controllers (`--controllers`); none run by default. */
  controllers?: readonly string[];
}

/** A process of the control plane: its output appended to DIR/NAME.log, tracked until it exits. */
function launch(dir: string, name: string, argv: string[]): ChildProcess {
  const log = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log] });
  closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.once('error', () => running.delete(child));
  return child;
}

/** SIGTERM, SIGKILL after 5 s; resolves once the process has exited. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Polls CHECK every 250 ms until it holds; fails with the log's end when CHILD exits or LIMIT passes. */
async function until(what: string, child: ChildProcess, log: string, limitMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: the process exited (${child.exitCode ?? child.signalCode}); the end of ${log}:\n${tail(log)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${limitMs / 1000} s; the end of ${log}:\n${tail(log)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export class ApiServer {
  url = '';
  ca = '';
  readonly token = randomBytes(32).toString('hex');
  readonly kubeconfig: string;
  /** etcd's client URL (its JSON gateway serves compaction). */
  etcdUrl = '';
  /** The server's minor version, from its /version (e.g. 36). */
  minor = 0;
  /** The server's gitVersion (e.g. v1.36.3). */
  version = '';
  private agent = new Agent({ keepAlive: true, maxSockets: 32 });
  private etcd?: ChildProcess;
  private apiserver?: ChildProcess;
  private controllerManager?: ChildProcess;
  private apiserverArgv: string[] = [];

  private constructor(readonly dir: string) {
    this.kubeconfig = join(dir, 'kubeconfig');
  }

  /**
   * etcd and kube-apiserver in a new directory, ready, with ServiceAccount default/default, and
   * kube-controller-manager when OPTIONS name controllers; stops all of them if any step fails.
   */
  static async start(options: ControlPlaneOptions = {}): Promise<ApiServer> {
    const kas = new ApiServer(mkdtempSync(join(tmpdir(), 'kas-e2e-')));
    planes.add(kas);
    try {
      await kas.boot();
      if (options.controllers && options.controllers.length > 0) await kas.startControllerManager(options.controllers);
      return kas;
    } catch (err) {
      await kas.stop();
      throw new Error(`starting the control plane in ${kas.dir} (its logs stay there): ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async boot(): Promise<void> {
    const dir = this.dir;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'tokens.csv'), `${this.token},admin,admin,system:masters\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'audit-policy.yaml'),
      'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  resources:\n  - group: ""\n    resources: [pods]\n',
    );

    const [client, peer, secure] = [await freePort(), await freePort(), await freePort()];
    this.etcdUrl = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    const etcdLog = join(dir, 'etcd.log');
    this.etcd = launch(dir, 'etcd', [
      binary('ETCD'),
      '--name=e2e',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`,
      `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=e2e=${peerUrl}`,
      '--listen-metrics-urls=',
    ]);
    await until('etcd', this.etcd, etcdLog, 30_000, async () => (await fetch(`${this.etcdUrl}/health`)).ok);

    this.url = `https://127.0.0.1:${secure}`;
    // The flags of a kubeadm-like single server without controllers (no endpoints for the kubernetes Service).
    this.apiserverArgv = [
      binary('KUBE_APISERVER'),
      `--etcd-servers=${this.etcdUrl}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${secure}`,
      '--advertise-address=127.0.0.1',
      `--cert-dir=${join(dir, 'certs')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`,
      `--audit-log-path=${join(dir, 'audit.log')}`,
      ...(process.env.KUBE_APISERVER_ARGS ?? '').split(' ').filter(Boolean),
    ];
    await this.launchApiServer();

    // The self-signed serving certificate file ends with the CA that signed it.
    const pems = readFileSync(join(dir, 'certs', 'apiserver.crt'), 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
    if (pems.length === 0) throw new Error(`no certificate in ${join(dir, 'certs', 'apiserver.crt')}`);
    this.ca = pems[pems.length - 1]!;
    writeFileSync(join(dir, 'ca.crt'), this.ca);
    const version = await this.must('GET', '/version');
    this.version = String(version.gitVersion);
    this.minor = Number.parseInt(String(version.minor), 10);

    // Pods need their ServiceAccount; nothing else creates it (no controllers run).
    const log = join(dir, 'kube-apiserver.log');
    await until('ServiceAccount default/default', this.apiserver!, log, 30_000, async () => {
      const a = await this.call('POST', '/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
      return a.status === 201 || a.status === 409;
    });
    this.writeKubeconfig(this.kubeconfig, 'admin', this.token, 'default');
  }

  /** A kubeconfig for this server: USER with TOKEN, namespace NAMESPACE by default. */
  private writeKubeconfig(file: string, user: string, token: string, namespace: string): void {
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'e2e', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.ca).toString('base64') } }],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user, namespace } }],
        'current-context': 'e2e',
      }),
      { mode: 0o600 },
    );
  }

  /**
   * kube-controller-manager with only CONTROLLERS, as the admin (the kubeconfig above), no leader
   * election (it is alone), serving its /healthz on a free loopback port with a self-signed
   * certificate in DIR; ready when /healthz answers ok (always allowed: its
   * --authorization-always-allow-paths default).
   */
  private async startControllerManager(controllers: readonly string[]): Promise<void> {
    const port = await freePort();
    this.controllerManager = launch(this.dir, 'kube-controller-manager', [
      await controllerManagerBinary(),
      `--kubeconfig=${this.kubeconfig}`,
      `--controllers=${controllers.join(',')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(this.dir, 'kube-controller-manager-certs')}`,
    ]);
    const log = join(this.dir, 'kube-controller-manager.log');
    await until('kube-controller-manager', this.controllerManager, log, 60_000, () => this.healthy(`https://127.0.0.1:${port}/healthz`));
  }

  /** Starts kube-apiserver with the recorded flags and waits for its /readyz (any certificate: the CA is read after). */
  private async launchApiServer(): Promise<void> {
    this.apiserver = launch(this.dir, 'kube-apiserver', this.apiserverArgv);
    const log = join(this.dir, 'kube-apiserver.log');
    await until('kube-apiserver', this.apiserver, log, 120_000, () => this.ready());
  }

  private ready(): Promise<boolean> {
    return this.healthy(`${this.url}/readyz`);
  }

  /** GET URL answers 200 (any certificate: a component's self-signed one). */
  private healthy(url: string): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(url, { rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.setTimeout(5000, () => req.destroy());
      req.end();
    });
  }

  /** Stops kube-controller-manager, kube-apiserver, then etcd (only the processes this object started). etcd's data goes; logs and the audit log stay. */
  async stop(): Promise<void> {
    planes.delete(this);
    this.agent.destroy();
    if (this.controllerManager) await terminate(this.controllerManager);
    if (this.apiserver) await terminate(this.apiserver);
    if (this.etcd) await terminate(this.etcd);
    rmSync(join(this.dir, 'etcd'), { recursive: true, force: true });
  }

  /** Restarts kube-apiserver alone (etcd and its data stay) with the same flags, and waits for /readyz. */
  async restart(): Promise<void> {
    if (this.apiserver) await terminate(this.apiserver);
    this.agent.destroy();
    this.agent = new Agent({ keepAlive: true, maxSockets: 32 });
    await this.launchApiServer();
  }

  /** One request with the admin token; JSON in and out. */
  call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.url}${path}`,
        {
          method,
          ca: this.ca,
          agent: this.agent,
          headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(payload ? { 'content-type': contentType } : {}) },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => {
            let parsed: Record<string, unknown> = {};
            try {
              parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              parsed = { text };
            }
            const header = res.headers.warning;
            const warnings = (Array.isArray(header) ? header : header ? [header] : []).map((w) => w.replace(/^\d+ - "?|"?$/g, ''));
            resolve({ status: res.statusCode ?? 0, body: parsed, warnings });
          });
        },
      );
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
      req.end(payload);
    });
  }

  /** Like call(), but a non-2xx answer is an error naming the request and the API server's message. */
  async must(method: string, path: string, body?: unknown, contentType?: string): Promise<Record<string, unknown>> {
    const a = await this.call(method, path, body, contentType);
    if (a.status < 200 || a.status > 299) throw new Error(`${method} ${path}: ${a.status} ${String(a.body.message ?? JSON.stringify(a.body))}`);
    return a.body;
  }

  kubectl(args: string[], input?: string): string {
    return execFileSync('kubectl', ['--kubeconfig', this.kubeconfig, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  }

  /** The audit log's events for pod creations (ResponseComplete), by the pod's name. */
  podCreations(): AuditEvent[] {
    const file = join(this.dir, 'audit.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.stage === 'ResponseComplete' && e.verb === 'create' && e.objectRef?.resource === 'pods' && !e.objectRef.subresource);
  }

  /** A ServiceAccount's token (TokenRequest) and a kubeconfig file that uses it. */
  async serviceAccountKubeconfig(namespace: string, name: string, dir: string): Promise<string> {
    const answer = await this.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
    const token = (answer.status as { token: string }).token;
    const file = join(dir, `${name}.kubeconfig`);
    this.writeKubeconfig(file, name, token, namespace);
    return file;
  }
}

export interface AuditEvent {
  stage: string;
  verb: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

/** Webhook calls the API server made for one admission: its `mutation.webhook.admission.k8s.io/round_*` annotations. */
export function webhookCalls(e: AuditEvent, configuration: string): number {
  return Object.entries(e.annotations ?? {}).filter(
    ([k, v]) => /^mutation\.webhook\.admission\.k8s\.io\/round_\d+_index_\d+$/.test(k) && (JSON.parse(v) as { configuration?: string }).configuration === configuration,
  ).length;
}
