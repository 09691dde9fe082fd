/** `certs`: a CA and a serving certificate for the webhook's Service; prints the caBundle. */
import { join } from 'node:path';
import { caBundle, generateCertificates, subjectAltNames, writeCertificates } from '../tls/generate.js';
import { intFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const CERTS_FLAGS: FlagSpecs = {
  service: { type: 'string', help: "the webhook Service's name (required)" },
  namespace: { type: 'string', help: "the Service's namespace (required)" },
  out: { type: 'string', help: 'directory for ca.crt, ca.key, tls.crt, tls.key (required)' },
  dev: { type: 'boolean', default: false, help: 'also valid for localhost and 127.0.0.1' },
  days: { type: 'string', default: '365', help: 'validity in days' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const CERTS_USAGE = `Usage: sidecar-injector certs --service NAME --namespace NS --out DIR [--dev] [--days N]

Writes a CA (ca.crt, ca.key) and a serving certificate signed by it (tls.crt,
tls.key; ECDSA P-256, serverAuth) for NAME, NAME.NS, NAME.NS.svc and
NAME.NS.svc.cluster.local. Keys are written readable by the owner only.
Prints the base64 CA bundle for the MutatingWebhookConfiguration's caBundle.

Example:
  sidecar-injector certs --service sidecar-injector --namespace sidecar-injector --out ./certs`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export async function runCerts(argv: string[], io: CommandIO): Promise<number> {
  const { flags } = parseFlags(CERTS_FLAGS, argv, io.env);
  for (const name of ['service', 'namespace', 'out']) {
    if (typeof flags[name] !== 'string' || flags[name] === '') throw new UsageError(`certs needs --${name}`);
  }
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
  const set = await generateCertificates(req);
  const out = flags.out as string;
  try {
    await writeCertificates(out, set);
  } catch (err) {
    io.err(`sidecar-injector certs: cannot write to ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return 1;
  }
  const sans = subjectAltNames(req);
  io.err(`wrote ${['ca.crt', 'ca.key', 'tls.crt', 'tls.key'].map((f) => join(out, f)).join(', ')}\n`);
  io.err(`SANs: ${[...sans.dns, ...sans.ips].join(', ')}; valid ${req.days} days\n`);
  io.out(`${caBundle(set)}\n`);
  return 0;
}
