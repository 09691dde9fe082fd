/**
 * What a certificate says, read with Node's own X509Certificate (no extra
 * library on the serving path): validity, fingerprint, names, and which CA
 * of a bundle signed a leaf.
 */
import { X509Certificate } from 'node:crypto';

export interface CertInfo {
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256, as openssl prints it; the identity of a CA in a bundle. */
  fingerprint: string;
  dnsNames: string[];
}

/** The CERTIFICATE blocks of a PEM bundle, each ending with a newline. */
export function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}

export function certInfo(pem: string | Buffer): CertInfo {
  const c = new X509Certificate(pem);
  return {
    pem: typeof pem === 'string' ? pem : pem.toString('utf8'),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    fingerprint: c.fingerprint256,
    dnsNames: (c.subjectAltName ?? '')
      .split(', ')
      .filter((n) => n.startsWith('DNS:'))
      .map((n) => n.slice(4)),
  };
}

/** The CA of `cas` whose key signed `leaf`, if any. */
export function issuerOf(leaf: string | Buffer, cas: readonly CertInfo[]): CertInfo | undefined {
  const cert = new X509Certificate(leaf);
  return cas.find((ca) => {
    const issuer = new X509Certificate(ca.pem);
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  });
}
