/**
 * A CA and a serving certificate for the webhook (ECDSA P-256), in PEM.
 * Used by the `certs` command and by `serve --dev-certs`.
 */
import { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CertificateRequest {
  service: string;
  namespace: string;
  /** Adds `localhost` and `127.0.0.1`, for a server run outside the cluster. */
  dev: boolean;
  days: number;
  now?: Date;
}

export interface CertificateSet {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export function subjectAltNames(req: Pick<CertificateRequest, 'service' | 'namespace' | 'dev'>): { dns: string[]; ips: string[] } {
  const { service, namespace } = req;
  const dns = [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
  if (req.dev) dns.push('localhost');
  return { dns, ips: req.dev ? ['127.0.0.1'] : [] };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function serial(): string {
  // Positive (high bit clear) 16-byte serial, as RFC 5280 asks.
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

type X509 = typeof import('@peculiar/x509');
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

// @peculiar/x509 needs the reflect-metadata polyfill; load both only when certificates are made.
async function x509Module(): Promise<X509> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return x509;
}

function validity(req: Pick<CertificateRequest, 'days' | 'now'>, notAfterCap?: Date): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date((req.now ?? new Date()).getTime() - 5 * 60_000); // tolerate clock skew
  const notAfter = new Date(notBefore.getTime() + req.days * 86_400_000);
  return { notBefore, notAfter: notAfterCap && notAfterCap < notAfter ? notAfterCap : notAfter };
}

export interface CertificateAuthority {
  caCert: string;
  caKey: string;
}

/** A self-signed CA (CA:TRUE, pathlen 0, keyCertSign). */
export async function generateCa(req: CertificateRequest): Promise<CertificateAuthority> {
  const x509 = await x509Module();
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${req.service}-ca`,
    ...validity(req),
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { caCert: ca.toString('pem') + '\n', caKey: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', caKeys.privateKey)) };
}

/** A serving certificate for the Service's names, signed by `ca`, never outliving it. */
export async function issueServingCertificate(req: CertificateRequest, ca: CertificateAuthority): Promise<{ cert: string; key: string }> {
  const x509 = await x509Module();
  const caCert = new x509.X509Certificate(ca.caCert);
  const der = Buffer.from(ca.caKey.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const caPrivate = await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  const caPublic = await caCert.publicKey.export(ALG, ['verify']);
  const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const sans = subjectAltNames(req);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.service}.${req.namespace}.svc`,
    issuer: caCert.subject,
    ...validity(req, caCert.notAfter),
    signingAlgorithm: ALG,
    publicKey: leafKeys.publicKey,
    signingKey: caPrivate,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...sans.dns.map((value) => ({ type: 'dns' as const, value })),
        ...sans.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caPublic),
    ],
  });
  return { cert: leaf.toString('pem') + '\n', key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey)) };
}

export async function generateCertificates(req: CertificateRequest): Promise<CertificateSet> {
  const ca = await generateCa(req);
  return { ...ca, ...(await issueServingCertificate(req, ca)) };
}

/** Writes ca.crt, ca.key, tls.crt, tls.key; keys are readable by the owner only. */
/** What `certs --out` and --dev-certs write, in this order. */
export const CERT_FILES = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'] as const;

export async function writeCertificates(dir: string, set: CertificateSet): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.crt'), set.caCert, { mode: 0o644 });
  await writeFile(join(dir, 'ca.key'), set.caKey, { mode: 0o600 });
  await writeFile(join(dir, 'tls.crt'), set.cert, { mode: 0o644 });
  await writeFile(join(dir, 'tls.key'), set.key, { mode: 0o600 });
}

export function caBundle(set: CertificateSet): string {
  return Buffer.from(set.caCert).toString('base64');
}
