/** `certs`: a CA and a serving certificate for the webhook's Service; prints the caBundle. */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { connectCluster, KubeError, type KubeClient } from '../kube/client.js';
import { CERT_FILES, caBundle, generateCa, generateCertificates, issueServingCertificate, subjectAltNames, writeCertificates, type CertificateAuthority, type CertificateRequest } from '../tls/generate.js';
import { planRenewal, trustSetAfterNewCa } from '../tls/renewal.js';
import { durationFlag, intFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const CERTS_FLAGS: FlagSpecs = {
  service: { type: 'string', help: "the webhook Service's name (required)" },
  namespace: { type: 'string', help: "the Service's namespace (required)" },
  out: { type: 'string', help: 'directory for ca.crt, ca.key, tls.crt, tls.key (required unless --secret)' },
  secret: { type: 'string', help: 'create this Secret (ca.crt, tls.crt, tls.key) in --namespace if it is missing; leave it if it exists' },
  'renew-before': { type: 'string', help: 'with --secret: renew an existing certificate that expires within this long (e.g. 720h) or whose names changed' },
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
so re-running it (helm upgrade, kubectl apply) keeps the CA; the CA's key is
kept in a second Secret, NAME-ca, which the replicas do not mount. With
--renew-before, an existing certificate that expires within that long, or
whose names no longer match the Service, is renewed under the same CA (a new
CA only when its key is gone or it expires too; ca.crt then carries the old
CA as well, for the overlap). The Helm chart's certgen hook Job runs this.

Example:
  sidecar-injector certs --service sidecar-injector --namespace sidecar-injector --out ./certs
  sidecar-injector certs --service sidecar-injector --namespace sidecar-injector --secret sidecar-injector-tls --renew-before 720h`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEYS = ['ca.crt', 'tls.crt', 'tls.key'];

async function existingFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const found = await Promise.all(names.map((n) => access(join(dir, n)).then(() => join(dir, n), () => undefined)));
  return found.filter((f): f is string => f !== undefined);
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const unb64 = (text: string | undefined) => Buffer.from(text ?? '', 'base64').toString('utf8');
type SecretData = Record<string, string>;

/** The Secrets of certgen: NAME (mounted by the replicas) and NAME-ca (the CA key, read by this command only). */
class SecretStore {
  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
  ) {}

  private path(name?: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  async read(name: string): Promise<SecretData | undefined> {
    try {
      return ((await this.client.request('GET', this.path(name), { timeoutMs: 10_000 })).body as { data?: SecretData }).data ?? {};
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw new Error(`cannot read Secret ${this.namespace}/${name}: ${(err as Error).message}`);
    }
  }

  /** Creates it; false when another run created it first (its data then stands). */
  async create(name: string, type: string, data: SecretData): Promise<boolean> {
    const body = { apiVersion: 'v1', kind: 'Secret', type, metadata: { name, namespace: this.namespace, labels: { 'app.kubernetes.io/managed-by': 'sidecar-injector-certs' } }, data };
    try {
      await this.client.request('POST', this.path(), { body, timeoutMs: 10_000 });
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 409) return false;
      throw new Error(`cannot create Secret ${this.namespace}/${name}: ${(err as Error).message}`);
    }
  }

  async update(name: string, data: SecretData): Promise<void> {
    try {
      await this.client.request('PATCH', this.path(name), { body: { data }, contentType: 'application/merge-patch+json', timeoutMs: 10_000 });
    } catch (err) {
      throw new Error(`cannot update Secret ${this.namespace}/${name}: ${(err as Error).message}`);
    }
  }
}

/**
 * `--secret`: create the Secrets when missing; an existing one (another run's, last install's) is left as
 * it is, or with --renew-before renewed when due (tls/renewal.ts says how). Prints the caBundle.
 */
async function ensureSecret(name: string, req: CertificateRequest, renewBeforeMs: number | undefined, kubeconfig: string | undefined, io: CommandIO, lean: boolean): Promise<number> {
  let client: KubeClient | undefined;
  try {
    client = await connectCluster({ kubeconfig, env: io.env, lean, kubectlDefaults: true });
  } catch (err) {
    io.err(`sidecar-injector certs: ${(err as Error).message}\n`);
    return 1;
  }
  if (!client) {
    io.err('sidecar-injector certs: --secret needs cluster access: --kubeconfig, KUBECONFIG, ~/.kube/config, or run in a pod\n');
    return 1;
  }
  try {
    const caBundleOut = await reconcileSecrets(new SecretStore(client, req.namespace), name, req, renewBeforeMs, io);
    if (caBundleOut === undefined) return 1;
    io.out(`${caBundleOut}\n`);
    return 0;
  } catch (err) {
    io.err(`sidecar-injector certs: ${(err as Error).message}\n`);
    return 1;
  }
}

/** Returns the caBundle (base64 of ca.crt) in force afterwards, or undefined after an error it has reported. */
async function reconcileSecrets(store: SecretStore, name: string, req: CertificateRequest, renewBeforeMs: number | undefined, io: CommandIO): Promise<string | undefined> {
  const caName = `${name}-ca`;
  const where = `Secret ${req.namespace}/${name}`;
  const sans = subjectAltNames(req);
  const existing = await store.read(name);
  if (!existing) {
    const kept = await store.read(caName);
    const ca = kept?.['ca.crt'] && kept['ca.key'] ? { caCert: unb64(kept['ca.crt']), caKey: unb64(kept['ca.key']) } : await generateCa(req);
    if (!kept) await store.create(caName, 'Opaque', { 'ca.crt': b64(ca.caCert), 'ca.key': b64(ca.caKey) });
    const leaf = await issueServingCertificate(req, ca);
    if (!(await store.create(name, 'kubernetes.io/tls', { 'ca.crt': b64(ca.caCert), 'tls.crt': b64(leaf.cert), 'tls.key': b64(leaf.key) }))) {
      return reconcileSecrets(store, name, req, renewBeforeMs, io); // another run created it between our read and our write: theirs stands
    }
    io.err(`created ${where}; SANs: ${[...sans.dns, ...sans.ips].join(', ')}; valid ${req.days} days\n`);
    return b64(ca.caCert);
  }
  const missing = SECRET_KEYS.filter((k) => !existing[k]);
  if (missing.length > 0) {
    io.err(`sidecar-injector certs: ${where} exists but lacks ${missing.join(', ')}; delete it to have it recreated, or fill it\n`);
    return undefined;
  }
  if (renewBeforeMs === undefined) {
    io.err(`${where} exists; left as it is\n`);
    return existing['ca.crt'];
  }
  const kept = await store.read(caName);
  const current = { caCrt: unb64(existing['ca.crt']), tlsCrt: unb64(existing['tls.crt']), caSecretCert: kept?.['ca.key'] ? unb64(kept['ca.crt']) : undefined };
  const plan = planRenewal(current, sans.dns, renewBeforeMs, new Date());
  if (plan.action === 'keep') {
    io.err(`${where} exists; not due for renewal (${plan.why})\n`);
    return existing['ca.crt'];
  }
  let trust = current.caCrt;
  let ca: CertificateAuthority;
  if (plan.keepCa && kept) {
    ca = { caCert: unb64(kept['ca.crt']), caKey: unb64(kept['ca.key']) };
  } else {
    ca = await generateCa(req);
    trust = trustSetAfterNewCa(ca.caCert, current, new Date());
    const data = { 'ca.crt': b64(ca.caCert), 'ca.key': b64(ca.caKey) };
    if (kept) await store.update(caName, data);
    else await store.create(caName, 'Opaque', data);
  }
  const leaf = await issueServingCertificate(req, ca);
  await store.update(name, { 'ca.crt': b64(trust), 'tls.crt': b64(leaf.cert), 'tls.key': b64(leaf.key) });
  io.err(`renewed ${where}: ${plan.why}\n`);
  return b64(trust);
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
  const renewBeforeMs = durationFlag('renew-before', flags['renew-before'] as string | undefined, 1);
  if (renewBeforeMs !== undefined && secret === undefined) throw new UsageError('--renew-before goes with --secret');
  if (secret !== undefined) return ensureSecret(secret, req, renewBeforeMs, flags.kubeconfig as string | undefined, io, opts.lean ?? false);
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
