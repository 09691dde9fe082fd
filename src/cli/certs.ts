/** `certs`: a CA and a serving certificate for the webhook's Service; prints the caBundle. */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { connectCluster, KubeError, type KubeClient } from '../kube/client.js';
import { CERT_FILES, caBundle, generateCertificates, subjectAltNames, writeCertificates, type CertificateRequest } from '../tls/generate.js';
import { intFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const CERTS_FLAGS: FlagSpecs = {
  service: { type: 'string', help: "the webhook Service's name (required)" },
  namespace: { type: 'string', help: "the Service's namespace (required)" },
  out: { type: 'string', help: 'directory for ca.crt, ca.key, tls.crt, tls.key (required unless --secret)' },
  secret: { type: 'string', help: 'create this Secret (ca.crt, tls.crt, tls.key) in --namespace if it is missing; leave it if it exists' },
  kubeconfig: { type: 'string', env: true, help: 'with --secret: kubeconfig file (default: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config)' },
  force: { type: 'boolean', default: false, help: 'with --out: replace files that exist (anyone trusting the old CA must be given the new one)' },
  dev: { type: 'boolean', default: false, help: 'also valid for localhost and 127.0.0.1' },
  days: { type: 'string', default: '365', help: 'validity in days' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const CERTS_USAGE = `Usage: sidecar-injector certs --service NAME --namespace NS (--out DIR | --secret NAME) [--dev] [--days N]

Writes a CA (ca.crt, ca.key) and a serving certificate signed by it (tls.crt,
tls.key; ECDSA P-256, serverAuth) for NAME, NAME.NS, NAME.NS.svc and
NAME.NS.svc.cluster.local. Keys are written readable by the owner only.
Prints the base64 CA bundle for the MutatingWebhookConfiguration's caBundle.
Refuses to replace files that exist in DIR (a new CA breaks whoever trusts the
old one) unless --force.

With --secret, nothing is written to disk: the Secret (type kubernetes.io/tls,
with ca.crt) is created in NS through the API only if it does not exist yet,
so re-running it (helm upgrade, kubectl apply) keeps the CA. The Helm chart's
certgen hook Job runs this.

Example:
  sidecar-injector certs --service sidecar-injector --namespace sidecar-injector --out ./certs
  sidecar-injector certs --service sidecar-injector --namespace sidecar-injector --secret sidecar-injector-tls`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEYS = ['ca.crt', 'tls.crt', 'tls.key'];

async function existingFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const found = await Promise.all(names.map((n) => access(join(dir, n)).then(() => join(dir, n), () => undefined)));
  return found.filter((f): f is string => f !== undefined);
}

/** `--secret`: create the Secret only when it is missing; an existing one (another replica's, last install's) wins. */
async function ensureSecret(name: string, req: CertificateRequest, kubeconfig: string | undefined, io: CommandIO, lean: boolean): Promise<number> {
  const fail = (message: string) => {
    io.err(`sidecar-injector certs: ${message}\n`);
    return 1;
  };
  let client: KubeClient | undefined;
  try {
    client = await connectCluster({ kubeconfig, env: io.env, lean, kubectlDefaults: true });
  } catch (err) {
    return fail((err as Error).message);
  }
  if (!client) return fail('--secret needs cluster access: --kubeconfig, KUBECONFIG, ~/.kube/config, or run in a pod');
  const path = `/api/v1/namespaces/${encodeURIComponent(req.namespace)}/secrets`;
  const where = `Secret ${req.namespace}/${name}`;
  const check = (body: unknown) => {
    const data = (body as { data?: Record<string, string> }).data ?? {};
    const missing = SECRET_KEYS.filter((k) => !data[k]);
    if (missing.length > 0) return fail(`${where} exists but lacks ${missing.join(', ')}; delete it to have it recreated, or fill it`);
    io.err(`${where} exists; left as it is\n`);
    io.out(`${data['ca.crt']}\n`);
    return 0;
  };
  try {
    return check((await client.request('GET', `${path}/${encodeURIComponent(name)}`, { timeoutMs: 10_000 })).body);
  } catch (err) {
    if (!(err instanceof KubeError && err.status === 404)) return fail(`cannot read ${where}: ${(err as Error).message}`);
  }
  const set = await generateCertificates(req);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name, namespace: req.namespace, labels: { 'app.kubernetes.io/managed-by': 'sidecar-injector-certs' } },
    data: { 'ca.crt': b64(set.caCert), 'tls.crt': b64(set.cert), 'tls.key': b64(set.key) },
  };
  try {
    await client.request('POST', path, { body, timeoutMs: 10_000 });
  } catch (err) {
    // Another run created it between our read and our write: theirs stands.
    if (err instanceof KubeError && err.status === 409) return check((await client.request('GET', `${path}/${encodeURIComponent(name)}`, { timeoutMs: 10_000 })).body);
    return fail(`cannot create ${where}: ${(err as Error).message}`);
  }
  const sans = subjectAltNames(req);
  io.err(`created ${where}; SANs: ${[...sans.dns, ...sans.ips].join(', ')}; valid ${req.days} days\n`);
  io.out(`${caBundle(set)}\n`);
  return 0;
}

export async function runCerts(argv: string[], io: CommandIO, opts: { lean?: boolean } = {}): Promise<number> {
  const { flags } = parseFlags(CERTS_FLAGS, argv, io.env);
  for (const name of ['service', 'namespace']) {
    if (typeof flags[name] !== 'string' || flags[name] === '') throw new UsageError(`certs needs --${name}`);
  }
  const secret = flags.secret as string | undefined;
  if ((flags.out === undefined) === (secret === undefined)) throw new UsageError('certs needs one of --out DIR or --secret NAME');
  if (secret !== undefined && !DNS_SUBDOMAIN.test(secret)) throw new UsageError(`--secret: "${secret}" is not a valid Secret name`);
  for (const name of ['service', 'namespace']) {
    const value = flags[name] as string;
    if (!DNS_LABEL.test(value) || value.length > 63) throw new UsageError(`--${name}: "${value}" is not a DNS label`);
  }
  const req = {
    service: flags.service as string,
    namespace: flags.namespace as string,
    dev: flags.dev === true,
    days: intFlag(flags, 'days', 1, 36500),
  };
  if (secret !== undefined) return ensureSecret(secret, req, flags.kubeconfig as string | undefined, io, opts.lean ?? false);
  const out = flags.out as string;
  const existing = flags.force === true ? [] : await existingFiles(out, CERT_FILES);
  if (existing.length > 0) {
    io.err(`sidecar-injector certs: ${existing.join(', ')} already exist; replacing them breaks whoever trusts the old CA (--force to do it anyway)\n`);
    return 1;
  }
  const set = await generateCertificates(req);
  try {
    await writeCertificates(out, set);
  } catch (err) {
    io.err(`sidecar-injector certs: cannot write to ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return 1;
  }
  const sans = subjectAltNames(req);
  io.err(`wrote ${CERT_FILES.map((f) => join(out, f)).join(', ')}\n`);
  io.err(`SANs: ${[...sans.dns, ...sans.ips].join(', ')}; valid ${req.days} days\n`);
  io.out(`${caBundle(set)}\n`);
  return 0;
}
