/**
 * The product installed as the chart installs it, on a real API server: the
 * chart rendered by the real Helm (`helm template`, as the chart tests do),
 * every object applied (the API server's own validation, defaulting and
 * RBAC), the certgen hook run as a process with its ServiceAccount's token,
 * and the Deployment's replicas run as processes with the Deployment's args
 * (paths mapped to kubelet-style volumes, ports to free ones) and their
 * ServiceAccount's token (TokenRequest), POD_NAME and POD_NAMESPACE as the
 * downward API gives them.
 *
 * What stands in for what the cluster would do: a round-robin TCP proxy on
 * loopback is the Service, and the webhook configuration's clientConfig is
 * a `url` with the Service's DNS name, which a hosts entry (removed at the
 * end) points at 127.0.0.1, so the API server checks the certgen
 * certificate's real names. The test plays kubelet: it copies the Secret
 * and the ConfigMap into each replica's volume, when it chooses.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { CHART, render } from '../chart/render.js';
import { freePort, MountedVolume } from '../helpers/ops.js';
import { startLoopbackService, type LoopbackService } from '../helpers/service.js';
import { runCli, startCli, type Started } from '../helpers/process.js';
import { ApiServer } from './apiserver.js';

export const RELEASE = 'sidecar-injector';
export const NS = 'sidecar-injector';
export const SERVICE_HOST = `${RELEASE}.${NS}.svc`;
const HOSTS = '/etc/hosts';
const HOSTS_MARK = '# sidecar-injector e2e';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> } } & Record<string, unknown>;
type Container = { args: string[]; env?: { name: string }[] };

export interface Replica {
  name: string;
  proc: Started;
  port: number;
  metricsPort: number;
  tls: MountedVolume;
  config: MountedVolume;
}

export class Install {
  readonly docs: Doc[];
  readonly replicas: Replica[] = [];
  private proxy: LoopbackService | undefined;
  proxyPort = 0;
  private readonly root = mkdtempSync(join(tmpdir(), 'e2e-install-'));

  constructor(
    private readonly kas: ApiServer,
    values: Record<string, unknown>,
  ) {
    const file = join(this.root, 'values.yaml');
    writeFileSync(file, stringify(values));
    const r = render([file], { name: RELEASE, namespace: NS });
    if (!r.ok) throw new Error(`chart render failed: ${r.stderr}`);
    this.docs = parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as Doc)
      .filter(Boolean);
  }

  doc(kind: string, name = RELEASE): Doc {
    const found = this.docs.find((d) => d.kind === kind && d.metadata.name === name);
    if (!found) throw new Error(`the chart rendered no ${kind} ${name}`);
    return found;
  }

  /** Namespace (with its default ServiceAccount, as the controllers would make it), then every object (hooks first, as Helm does), with kubectl's server-side apply. */
  apply(): void {
    // helm install creates the chart's crds/ first, and never templates them.
    for (const f of readdirSync(join(CHART, 'crds'))) this.kas.kubectl(['apply', '--server-side', '--field-manager=helm', '-f', join(CHART, 'crds', f)]);
    this.kas.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
    this.kas.kubectl(['create', 'namespace', NS]);
    this.kas.kubectl(['-n', NS, 'create', 'serviceaccount', 'default']);
    const hooks = this.docs.filter((d) => d.metadata.annotations?.['helm.sh/hook']);
    const rest = this.docs.filter((d) => !d.metadata.annotations?.['helm.sh/hook']);
    for (const set of [hooks, rest].filter((x) => x.length > 0)) {
      this.kas.kubectl(['apply', '--server-side', '--field-manager=helm', '-f', '-'], set.map((d) => `---\n${stringify(d)}`).join(''));
    }
  }

  /** The certgen hook Job's container, run as a process with the Job's ServiceAccount's token. */
  async certgen(): Promise<void> {
    const job = this.doc('Job', `${RELEASE}-certgen`) as Doc & { spec: { template: { spec: { serviceAccountName: string; containers: Container[] } } } };
    const pod = job.spec.template.spec;
    const kubeconfig = await this.kas.serviceAccountKubeconfig(NS, pod.serviceAccountName, this.root);
    const r = await runCli([...pod.containers[0]!.args, '--kubeconfig', kubeconfig], { env: { KUBERNETES_SERVICE_HOST: '' } });
    if (r.code !== 0) throw new Error(`certgen failed (${r.code}): ${r.stderr}`);
  }

  async secretFiles(): Promise<Record<string, string>> {
    const s = await this.kas.must('GET', `/api/v1/namespaces/${NS}/secrets/${RELEASE}-tls`);
    return Object.fromEntries(Object.entries(s.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async configFiles(): Promise<Record<string, string>> {
    const cm = await this.kas.must('GET', `/api/v1/namespaces/${NS}/configmaps/${RELEASE}-config`);
    return cm.data as Record<string, string>;
  }

  /** The Deployment's args, with its volume paths mapped into `dir` and its ports to free ones. */
  private deploymentArgs(dir: string, port: number, metricsPort: number): string[] {
    const dep = this.doc('Deployment') as Doc & { spec: { template: { spec: { containers: Container[] } } } };
    return dep.spec.template.spec.containers[0]!.args.map((a) =>
      a
        .replace('/etc/sidecar-injector/', `${dir}/`)
        .replace(/^--port=\d+$/, `--port=${port}`)
        .replace(/^--metrics-port=\d+$/, `--metrics-port=${metricsPort}`),
    );
  }

  /** Starts one replica as the Deployment would; resolves when it serves (webhook) or keeps the policy (policy mode). */
  async startReplica(extraArgs: string[] = []): Promise<Replica> {
    const name = `${RELEASE}-7d9f8c6b5-${Math.random().toString(36).slice(2, 7)}`;
    const dir = join(this.root, name);
    const tls = new MountedVolume(join(dir, 'tls'));
    const policyMode = this.deploymentArgs(dir, 0, 0).some((a) => a.startsWith('--policy='));
    if (!policyMode) tls.update(await this.secretFiles());
    const config = new MountedVolume(join(dir, 'config'));
    config.update(await this.configFiles());
    const kubeconfig = await this.kas.serviceAccountKubeconfig(NS, RELEASE, dir);
    const [port, metricsPort] = [await freePort(), await freePort()];
    // An extra `--flag=value` replaces the Deployment's own.
    const overridden = (a: string) => extraArgs.some((x) => x.split('=')[0] === a.split('=')[0]);
    const args = [...this.deploymentArgs(dir, port, metricsPort).filter((a) => !overridden(a)), '--host=127.0.0.1', '--kubeconfig', kubeconfig, ...extraArgs];
    const proc = startCli(args, {
      POD_NAME: name,
      POD_NAMESPACE: NS,
      KUBERNETES_SERVICE_HOST: '',
    });
    await proc.waitForLog((l) => l.msg === (policyMode ? 'keeping the admission policy in step with the config' : 'serving /mutate over HTTPS'), 30_000);
    const replica = { name, proc, port, metricsPort, tls, config };
    this.replicas.push(replica);
    return replica;
  }

  async ready(r: Replica, ms = 40_000): Promise<void> {
    const deadline = Date.now() + ms;
    while ((await fetch(`http://127.0.0.1:${r.metricsPort}/readyz`).then((a) => a.status, () => 0)) !== 200) {
      if (Date.now() > deadline) throw new Error(`replica ${r.name} not ready after ${ms} ms`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  /** The Service: a round-robin TCP proxy over the live replicas. */
  async startService(): Promise<void> {
    const live = () => this.replicas.filter((r) => r.proc.child.exitCode === null && r.proc.child.signalCode === null);
    this.proxy = await startLoopbackService(() => live().map((r) => r.port));
    this.proxyPort = this.proxy.port;
    const hosts = readFileSync(HOSTS, 'utf8');
    if (!hosts.includes(HOSTS_MARK)) writeFileSync(HOSTS, `${hosts.replace(/\n?$/, '\n')}127.0.0.1 ${SERVICE_HOST} ${HOSTS_MARK}\n`);
  }

  /**
   * A fresh install renders its webhooks Ignore and names the wanted failurePolicy in an annotation; the
   * replicas write it once the API server has called them (ca-bundle.ts). Waits for that, so the tests
   * that follow see the configuration as it stays.
   */
  async armed(configuration = RELEASE): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const mwc = await this.kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configuration}`);
      const wanted = (mwc.metadata as { annotations?: Record<string, string> }).annotations?.['sidecar-injector.io/failure-policy'];
      const hooks = mwc.webhooks as { failurePolicy?: string }[];
      if (wanted === undefined || hooks.every((h) => h.failurePolicy === wanted)) return;
      if (Date.now() > deadline) throw new Error(`the webhooks of ${configuration} are not ${wanted} after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The webhook configuration's clientConfig: the Service's name through the hosts entry, as a url. */
  async pointWebhooksAtService(configuration = RELEASE): Promise<void> {
    const mwc = await this.kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configuration}`);
    const ops = (mwc.webhooks as unknown[]).flatMap((_, i) => [
      { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
      { op: 'add', path: `/webhooks/${i}/clientConfig/url`, value: `https://${SERVICE_HOST}:${this.proxyPort}/mutate` },
    ]);
    await this.kas.must('PATCH', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${configuration}`, ops, 'application/json-patch+json');
  }

  /**
   * Policy mode beside the webhook: `policy` for the chart's own ConfigMap, applied as it is, or with its
   * bindings narrowed to namespaces labelled `label=policy` (install the chart with those left out of the
   * webhook's selector). Returns the objects' kinds and names.
   */
  async applyPolicy(label?: string): Promise<{ kind: string; name: string }[]> {
    const file = join(this.root, 'policy-config.yaml');
    writeFileSync(file, (await this.configFiles())['config.yaml']!);
    const compiled = await runCli(['policy', '--config', file, '-o', 'json']);
    if (compiled.code !== 0) throw new Error(`policy: ${compiled.stderr}`);
    const list = JSON.parse(compiled.stdout) as { items: { kind: string; metadata: { name: string }; spec: { matchResources?: { namespaceSelector: { matchExpressions: unknown[] } } } }[] };
    if (label) for (const o of list.items) o.spec.matchResources?.namespaceSelector.matchExpressions.push({ key: label, operator: 'In', values: ['policy'] });
    this.kas.kubectl(['apply', '-f', '-'], JSON.stringify(list));
    return list.items.map((o) => ({ kind: o.kind, name: o.metadata.name }));
  }

  async stop(): Promise<void> {
    // Every replica's log stays behind for a failure to be read.
    for (const r of this.replicas) writeFileSync(join(this.root, `${r.name}.log`), r.proc.lines.map((l) => JSON.stringify(l)).join('\n'));
    process.stderr.write(`replica logs: ${this.root}/*.log; API server logs: ${this.kas.dir}\n`);
    for (const r of this.replicas) if (r.proc.child.exitCode === null) r.proc.child.kill('SIGKILL');
    await Promise.all(this.replicas.map((r) => r.proc.exited));
    await this.proxy?.close();
    const hosts = readFileSync(HOSTS, 'utf8');
    if (hosts.includes(HOSTS_MARK)) writeFileSync(HOSTS, hosts.split('\n').filter((l) => !l.includes(HOSTS_MARK)).join('\n'));
  }
}

/** A real API server with the chart installed and two replicas serving behind the "Service" (for beforeAll). */
export async function installed(values: Record<string, unknown> = {}, on?: ApiServer): Promise<{ kas: ApiServer; install: Install; replicas: Replica[] }> {
  const kas = on ?? (await ApiServer.start());
  const install = new Install(kas, values);
  try {
    install.apply();
    await install.certgen();
    const replicas = [await install.startReplica(), await install.startReplica()];
    await install.startService();
    await install.pointWebhooksAtService();
    await Promise.all(replicas.map((r) => install.ready(r)));
    await install.armed();
    return { kas, install, replicas };
  } catch (err) {
    // The caller never gets these to stop: stop them here (the control plane's logs stay in its directory).
    await install.stop();
    if (!on) await kas.stop();
    throw err;
  }
}
