/**
 * `--patch-ca-bundle NAME`: keeps the caBundle of every webhook in the named
 * MutatingWebhookConfiguration trusting what the replicas serve with. Runs at
 * start and after each certificate change, in the background (never on the
 * admission path), retrying with backoff until it succeeds or a newer request
 * supersedes it.
 *
 * Rotation across replicas (SPEC 7): `ca.crt` is the Secret's trust set, the
 * newest CA first and, after a CA change, the previous one kept for the
 * overlap (`certs --renew-before` writes it so). A replica whose trust set
 * holds the newest CA anywhere in sight writes exactly that set (so a CA two
 * generations old leaves); a replica whose Secret is behind (another replica
 * has written a newer CA) only makes sure the CA that signed its own serving
 * certificate is there, and removes nothing. So two replicas never flip the
 * bundle between their views, and every certificate still served stays
 * trusted. Expired CAs are dropped. The serve side waits for the new CA to
 * be trusted before it serves a certificate signed by it (serve.ts).
 *
 * The write is a JSON patch that touches only the caBundle fields, each
 * guarded by a `test` of that webhook's name at that index: it cannot clobber
 * fields other controllers (Helm, another replica) own, and two replicas with
 * the same CA converge on the same object, so they never fight. When every
 * webhook already carries the CA nothing is written.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { KubeClient } from './client.js';
import { certInfo, issuerOf, pemBlocks, type CertInfo } from '../tls/inspect.js';
import { SyncLoop } from './sync-loop.js';

export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';

export type CaBundleResult = 'patched' | 'unchanged' | 'failure';

interface WebhookLike {
  name?: string;
  clientConfig?: { caBundle?: string };
}

export type JsonPatchOp = { op: 'test' | 'add'; path: string; value: unknown };

/** The CAs a webhook's caBundle should hold, given what it holds, our trust set and the CA of what we serve. Pure. */
export function desiredCas(current: readonly CertInfo[], own: readonly CertInfo[], issuer: CertInfo | undefined, now: Date): CertInfo[] {
  const has = (list: readonly CertInfo[], c: CertInfo) => list.some((x) => x.fingerprint === c.fingerprint);
  const newestOwn = Math.max(...own.map((c) => c.notBefore.getTime()));
  const behind = current.some((c) => !has(own, c) && c.notBefore.getTime() > newestOwn);
  const wanted = behind ? [...current, ...(issuer ? [issuer] : [])] : [...own];
  const out: CertInfo[] = [];
  for (const c of wanted) if (c.notAfter > now && !has(out, c)) out.push(c);
  // One canonical order, newest first, so replicas that agree write the same bytes.
  return out.sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime() || a.fingerprint.localeCompare(b.fingerprint));
}

/** base64 caBundle of PEM blocks. */
export const encodeBundle = (cas: readonly CertInfo[]) => Buffer.from(cas.map((c) => pemBlocks(c.pem)[0] ?? '').join('')).toString('base64');

function decodeBundle(b64: string | undefined): CertInfo[] {
  if (!b64) return [];
  return pemBlocks(Buffer.from(b64, 'base64').toString('utf8')).flatMap((pem) => {
    try {
      return [certInfo(pem)];
    } catch {
      return []; // an unparsable block is not trust anyone relies on
    }
  });
}

/** The patch that gives every webhook its wanted caBundle (base64 PEM, or a function of its current one); empty when all have it. Pure. */
export function caBundlePatch(webhooks: readonly WebhookLike[], want: string | ((current: string | undefined) => string)): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  webhooks.forEach((w, i) => {
    const caBundle = typeof want === 'string' ? want : want(w.clientConfig?.caBundle);
    if (w.clientConfig?.caBundle === caBundle) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    // `add` sets a member whether or not it exists; clientConfig itself is required by the API.
    ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle });
  });
  return ops;
}

export interface CaBundleOptions {
  client: KubeClient;
  /** The MutatingWebhookConfiguration's name. */
  name: string;
  /** ca.crt, PEM: the trust set. */
  caPath: string;
  /** tls.crt, PEM: its issuer must stay trusted; optional. */
  certPath?: string;
  logger: Logger;
  onResult(result: CaBundleResult): void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export class CaBundleWriter {
  private readonly loop: SyncLoop;
  /** When a write last changed the bundle (the API server needs a moment to use it). */
  lastPatchedAt = 0;

  constructor(private readonly opts: CaBundleOptions) {
    this.loop = new SyncLoop(async () => opts.onResult(await this.writeOnce()), {
      logger: opts.logger.child({ webhookConfiguration: opts.name }),
      what: 'caBundle',
      backoffInitialMs: opts.backoffInitialMs,
      backoffMaxMs: opts.backoffMaxMs,
      onFailure: () => opts.onResult('failure'),
    });
  }

  /** Asks for the CA to be written now; a write in progress is followed by another. */
  sync(): void {
    this.loop.sync();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Writes now and resolves once the files on disk are trusted (or the writer stopped, or `boundMs` passed: false). */
  async ensureTrusted(boundMs: number): Promise<boolean> {
    this.loop.sync();
    return this.loop.settled(boundMs);
  }

  private async writeOnce(): Promise<CaBundleResult> {
    const pem = await readFile(this.opts.caPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${this.opts.caPath}: ${err.code ?? err.message}`);
    });
    const own = pemBlocks(pem).map((b) => certInfo(b));
    if (own.length === 0) throw new Error(`${this.opts.caPath} holds no PEM certificate`);
    const leaf = this.opts.certPath ? await readFile(this.opts.certPath).catch(() => undefined) : undefined;
    const issuer = leaf ? issuerOf(leaf, own) : undefined;
    const path = MWC_PATH + encodeURIComponent(this.opts.name);
    const { body } = await this.opts.client.request('GET', path, { timeoutMs: 10_000 });
    const webhooks = ((body as { webhooks?: WebhookLike[] }).webhooks ?? []) as WebhookLike[];
    const now = new Date();
    const ops = caBundlePatch(webhooks, (current) => encodeBundle(desiredCas(decodeBundle(current), own, issuer, now)));
    if (ops.length === 0) return 'unchanged';
    await this.opts.client.request('PATCH', path, { body: ops, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
    this.lastPatchedAt = Date.now();
    this.opts.logger.info({ webhookConfiguration: this.opts.name, webhooks: ops.length / 2, cas: own.length }, 'caBundle written');
    return 'patched';
  }
}
