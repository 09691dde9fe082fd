/**
 * `certs --secret NAME --renew-before DURATION`: whether an existing
 * serving certificate is due, and how. Pure.
 *
 * Renewal keeps the CA when it can: its key is kept in a second Secret
 * (`NAME-ca`) that only the certgen Job reads; the replicas mount NAME only,
 * so a replica never holds the CA key. Then the caBundle does not change at
 * all. A new CA is made only when its key is not there (an install from
 * before renewal existed, or the Secret was deleted) or the CA itself expires
 * within the window; the new trust set then carries the previous CA too, and
 * the replicas keep it in the caBundle until no replica serves with it
 * (kube/ca-bundle.ts).
 */
import { certInfo, issuerOf, pemBlocks, type CertInfo } from './inspect.js';

export type RenewalPlan =
  | { action: 'keep'; why: string }
  | { action: 'renew'; keepCa: boolean; why: string };

export interface ExistingTls {
  /** The serving Secret's ca.crt: the trust set. */
  caCrt: string;
  tlsCrt: string;
  /** The CA Secret's certificate, when it exists (its key is then there too). */
  caSecretCert?: string;
}

export function planRenewal(existing: ExistingTls, wantedDns: readonly string[], renewBeforeMs: number, now: Date): RenewalPlan {
  const leaf = certInfo(existing.tlsCrt);
  const reasons: string[] = [];
  const left = leaf.notAfter.getTime() - now.getTime();
  if (left < renewBeforeMs) reasons.push(left <= 0 ? 'the serving certificate has expired' : `the serving certificate expires in ${Math.floor(left / 86_400_000)} days`);
  const missing = wantedDns.filter((n) => !leaf.dnsNames.includes(n));
  if (missing.length > 0) reasons.push(`its names lack ${missing.join(', ')}`);
  const trust = pemBlocks(existing.caCrt).map((p) => certInfo(p));
  if (!issuerOf(existing.tlsCrt, trust)) reasons.push('it is not signed by a CA in ca.crt');
  if (reasons.length === 0) return { action: 'keep', why: `valid until ${leaf.notAfter.toISOString()}, names match` };

  const ca: CertInfo | undefined = existing.caSecretCert ? certInfo(existing.caSecretCert) : undefined;
  const why = reasons.join('; ');
  if (!ca) return { action: 'renew', keepCa: false, why: `${why}; no CA key kept: a new CA` };
  if (ca.notAfter.getTime() - now.getTime() < renewBeforeMs) return { action: 'renew', keepCa: false, why: `${why}; the CA expires within the window too: a new CA` };
  if (!trust.some((c) => c.fingerprint === ca.fingerprint)) return { action: 'renew', keepCa: false, why: `${why}; the kept CA is not in ca.crt: a new CA` };
  return { action: 'renew', keepCa: true, why: `${why}; same CA` };
}

/** The trust set after a CA change: the new CA, then the one that signed the certificate the replicas serve now, while it is valid. */
export function trustSetAfterNewCa(newCa: string, existing: ExistingTls, now: Date): string {
  const inUse = issuerOf(existing.tlsCrt, pemBlocks(existing.caCrt).map((p) => certInfo(p)));
  return [newCa, ...(inUse && inUse.notAfter > now ? [pemBlocks(inUse.pem)[0] ?? ''] : [])].join('');
}
