/**
 * A real kube-apiserver (v1.36, built by ../shared/tools/kube-apiserver) with
 * etcd on loopback, started by the toolkit's start.sh into a directory of
 * ours and stopped by its stop.sh, which kills exactly what start.sh started.
 * Plus a small HTTPS client with the admin token on one keep-alive
 * connection (the witness: what the API server stored), kubectl with the
 * admin kubeconfig, the audit log, and a restart of the API server alone.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TOOLKIT = fileURLToPath(new URL('../../../shared/tools/kube-apiserver/', import.meta.url));

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** The API server's `Warning` headers (admission warnings among them). */
  warnings: string[];
}

export class ApiServer {
  readonly url: string;
  readonly ca: string;
  readonly token: string;
  readonly kubeconfig: string;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });

  private constructor(readonly dir: string) {
    const env = Object.fromEntries(
      readFileSync(join(dir, 'env'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    ) as Record<string, string>;
    this.url = env.KUBE_APISERVER_URL!;
    this.ca = readFileSync(env.KUBE_APISERVER_CA!, 'utf8');
    this.token = env.ADMIN_TOKEN!;
    this.kubeconfig = env.KUBECONFIG!;
  }

  /** start.sh into a new directory; KUBE_APISERVER names the binary. */
  static start(): ApiServer {
    const dir = mkdtempSync(join(tmpdir(), 'kas-e2e-'));
    execFileSync('bash', [join(TOOLKIT, 'start.sh'), dir], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
    return new ApiServer(dir);
  }

  stop(): void {
    this.agent.destroy();
    if (existsSync(join(this.dir, 'pids'))) execFileSync('bash', [join(TOOLKIT, 'stop.sh'), this.dir], { stdio: 'ignore' });
  }

  /**
   * Restarts kube-apiserver alone (etcd and its data stay): SIGTERM the process start.sh recorded, start it
   * again with the same command line, wait for /readyz. Its pid replaces the old one in DIR/pids for stop.sh.
   */
  async restart(): Promise<void> {
    const pids = readFileSync(join(this.dir, 'pids'), 'utf8');
    const pid = Number(/^kube-apiserver (\d+)$/m.exec(pids)?.[1]);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    process.kill(pid, 'SIGTERM');
    while (existsSync(`/proc/${pid}`)) await new Promise((r) => setTimeout(r, 100));
    this.agent.destroy();
    const { openSync } = await import('node:fs');
    const log = openSync(join(this.dir, 'kube-apiserver.log'), 'a');
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    appendFileSync(join(this.dir, 'pids'), `kube-apiserver ${child.pid}\n`);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ready = await this.call('GET', '/readyz').then(
        (a) => a.status === 200,
        () => false,
      );
      if (ready) return;
      if (Date.now() > deadline) throw new Error('kube-apiserver not ready after its restart');
      await new Promise((r) => setTimeout(r, 250));
    }
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
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'e2e', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.ca).toString('base64') } }],
        users: [{ name, user: { token } }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: name, namespace } }],
        'current-context': 'e2e',
      }),
    );
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
