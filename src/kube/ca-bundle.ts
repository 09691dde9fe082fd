/**
 * `--patch-ca-bundle NAME`: keeps the caBundle of every webhook in the named
 * MutatingWebhookConfiguration trusting what the replicas serve with. Runs at
 * start, after each certificate change and every few seconds (with the
 * Lease renewal), in the background (never on the admission path), retrying
 * with backoff until it succeeds or a newer request supersedes it.
 *
 * Rotation across replicas (SPEC 7): the bundle is the union of what the live
 * replicas need, whatever each Secret's `ca.crt` says. A replica needs the CA
 * that signed the certificate it serves, the one that signed the certificate
 * it is about to serve (trust before serve, serve.ts), and its trust set
 * (`ca.crt`). It publishes those fingerprints in its Lease
 * (replica-lease.ts), then writes its own needs plus every CA of the current
 * bundle that another live replica needs; anything else leaves once it has
 * been needed by no one for a grace period (three renewals: a Lease
 * published a moment after our read is seen by then), and an expired CA
 * leaves at once. So a replica never removes what another still needs, a
 * replica that is behind puts its own CA back on its next round, and
 * replicas that agree write the same bytes and stop writing (no
 * last-writer-wins). A replica that cannot use Leases (no RBAC) removes
 * nothing but expired CAs, and says so.
 *
 * The write is a JSON patch that touches only the caBundle fields, each
 * guarded by a `test` of that webhook's name at that index, and the whole by
 * a `test` of the resourceVersion read. The configuration is read before the
 * Leases: a replica missing from the Leases we read published after that, so
 * any write of its came after our read and makes our `test` fail (we retry
 * with its needs); one that writes later puts back what it needs itself.
 * When every webhook already carries the wanted bundle nothing is written.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { KubeClient } from './client.js';
import { certInfo, issuerOf, pemBlocks, type CertInfo } from '../tls/inspect.js';
import { SyncLoop } from './sync-loop.js';
import type { ReplicaLease } from './replica-lease.js';

export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';

export type CaBundleResult = 'patched' | 'unchanged' | 'failure';

interface WebhookLike {
  name?: string;
  clientConfig?: { caBundle?: string };
}

export type JsonPatchOp = { op: 'test' | 'add'; path: string; value: unknown };

/** The API server rebuilds its webhook client when the configuration changes; give it this long after a caBundle write. */
export const TRUST_PROPAGATION_MS = 3000;

/**
 * The CAs a webhook's caBundle should hold: ours (what we serve with, are about to, and trust), and of
 * the current ones, those another live replica needs (all of them when that cannot be known). Expired
 * CAs leave. One canonical order, newest first, so replicas that agree write the same bytes. Pure.
 */
export function desiredCas(current: readonly CertInfo[], mine: readonly CertInfo[], othersNeed: ReadonlySet<string> | undefined, now: Date): CertInfo[] {
  const kept = othersNeed === undefined ? current : current.filter((c) => othersNeed.has(c.fingerprint));
  const out: CertInfo[] = [];
  for (const c of [...mine, ...kept]) if (c.notAfter > now && !out.some((x) => x.fingerprint === c.fingerprint)) out.push(c);
  return out.sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime() || a.fingerprint.localeCompare(b.fingerprint));
}

/**
 * A CA no live replica needs leaves only after `graceMs` of being unneeded: a replica whose Lease we
 * missed by a moment (it published after our read and found the bundle already trusting it) shows up
 * in a later read well within that time. Returns the fingerprints to keep for now, and updates
 * `since` (when each current CA was first seen unneeded). Pure but for `since`.
 */
export function retiring(current: readonly CertInfo[], needed: ReadonlySet<string>, since: Map<string, number>, now: number, graceMs: number): Set<string> {
  const keep = new Set<string>();
  for (const fp of [...since.keys()]) if (needed.has(fp) || !current.some((c) => c.fingerprint === fp)) since.delete(fp);
  for (const c of current) {
    if (needed.has(c.fingerprint)) continue;
    const first = since.get(c.fingerprint) ?? now;
    since.set(c.fingerprint, first);
    if (now - first < graceMs) keep.add(c.fingerprint);
  }
  return keep;
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
  /** This replica's Lease; without one, nothing but expired CAs is removed. */
  lease?: ReplicaLease;
  /** How often the Lease is renewed and the bundle checked again (ms). */
  resyncMs?: number;
  /** How long a CA no live replica needs stays in the bundle (ms); default three resyncs. */
  retireAfterMs?: number;
  logger: Logger;
  onResult(result: CaBundleResult): void;
  /** After each check: whether the bundle trusts what this replica serves (and is about to), and how many CAs it holds. */
  onTrust?(trusted: boolean, cas: number): void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export class CaBundleWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  /** When a write last changed the bundle (the API server needs a moment to use it). */
  lastPatchedAt = 0;
  /** The CA of the certificate in force; undefined until the first read (then it is the one on disk). */
  private serving: CertInfo | undefined;
  /** The CA of the certificate on disk, which serve.ts puts in force once it is trusted. */
  private pending: CertInfo | undefined;
  /** The last check found both in every webhook's bundle (or nothing to check: no issuer found). */
  private bundleTrusts = false;
  private leaseProblemLogged = false;
  /** When each CA of the bundle was first seen needed by no live replica. */
  private readonly unneededSince = new Map<string, number>();

  constructor(private readonly opts: CaBundleOptions) {
    this.log = opts.logger.child({ webhookConfiguration: opts.name });
    this.loop = new SyncLoop(async () => opts.onResult(await this.writeOnce()), {
      logger: this.log,
      what: 'caBundle',
      backoffInitialMs: opts.backoffInitialMs,
      backoffMaxMs: opts.backoffMaxMs,
      onFailure: () => opts.onResult('failure'),
    });
  }

  /** Writes now, then again every resyncMs (renewing the Lease) until stopped. */
  start(): void {
    this.loop.every(this.opts.resyncMs ?? 5000);
  }

  /** Asks for the CA to be written now; a write in progress is followed by another. */
  sync(): void {
    this.loop.sync();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Stops, and deletes the Lease so the others stop counting this replica now (shutdown). */
  async release(): Promise<void> {
    this.stop();
    await this.opts.lease?.release();
  }

  /** Writes now and resolves once the files on disk are trusted (or the writer stopped, or `boundMs` passed: false). */
  async ensureTrusted(boundMs: number): Promise<boolean> {
    this.loop.sync();
    return this.loop.settled(boundMs);
  }

  /** The certificate on disk is now the one served: its CA is what we serve with. */
  inForce(): void {
    this.serving = this.pending;
    this.loop.sync();
  }

  /** Whether the API server trusts what this replica serves: in the bundle, and written long enough ago to be in use. */
  trusted(now = Date.now()): boolean {
    return this.bundleTrusts && now >= this.lastPatchedAt + TRUST_PROPAGATION_MS;
  }

  /** How long until a write just made is in use by the API server (0 when none is pending). */
  propagationWaitMs(now = Date.now()): number {
    return Math.max(0, this.lastPatchedAt + TRUST_PROPAGATION_MS - now);
  }

  /** Publishes our needs in the Lease; false when Leases cannot be used (then nothing but expired CAs leaves). */
  private async publish(needs: CertInfo[], own: CertInfo[]): Promise<boolean> {
    const lease = this.opts.lease;
    if (!lease) return false;
    try {
      await lease.publish({ serving: needs.map((c) => c.fingerprint), trusted: own.map((c) => c.fingerprint) });
      return true;
    } catch (err) {
      this.leaseProblem(err as Error);
      return false;
    }
  }

  /** What the other live replicas need; undefined when that cannot be known. */
  private async othersNeed(lease: ReplicaLease): Promise<Set<string> | undefined> {
    try {
      const others = await lease.others();
      if (this.leaseProblemLogged) this.log.info('replica Leases work again: CAs no replica needs leave the caBundle');
      this.leaseProblemLogged = false;
      return others;
    } catch (err) {
      this.leaseProblem(err as Error);
      return undefined;
    }
  }

  private trustIs(trusted: boolean, bundles: CertInfo[][]): void {
    this.bundleTrusts = trusted;
    this.opts.onTrust?.(trusted, Math.max(0, ...bundles.map((b) => b.length)));
  }

  private leaseProblem(err: Error): void {
    if (this.leaseProblemLogged) return;
    this.log.warn({ err: err.message }, 'replica Leases unavailable: the caBundle keeps every CA until it expires (RBAC: leases in this namespace)');
    this.leaseProblemLogged = true;
  }

  private async writeOnce(): Promise<CaBundleResult> {
    const pem = await readFile(this.opts.caPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${this.opts.caPath}: ${err.code ?? err.message}`);
    });
    const own = pemBlocks(pem).map((b) => certInfo(b));
    if (own.length === 0) throw new Error(`${this.opts.caPath} holds no PEM certificate`);
    const leaf = this.opts.certPath ? await readFile(this.opts.certPath).catch(() => undefined) : undefined;
    this.pending = leaf ? issuerOf(leaf, own) : undefined;
    this.serving ??= this.pending;
    const issuers = [this.serving, this.pending].filter((c): c is CertInfo => c !== undefined);
    // Order matters: our Lease before our write (the others keep what we need), the configuration before
    // the others' Leases (a replica not in that list wrote after our read, and the resourceVersion test fails).
    const published = await this.publish(issuers, own);
    const path = MWC_PATH + encodeURIComponent(this.opts.name);
    const { body } = await this.opts.client.request('GET', path, { timeoutMs: 10_000 });
    const othersNeed = published && this.opts.lease ? await this.othersNeed(this.opts.lease) : undefined;
    const mwc = body as { metadata?: { resourceVersion?: string }; webhooks?: WebhookLike[] };
    const webhooks = mwc.webhooks ?? [];
    const now = new Date();
    const bundles: CertInfo[][] = [];
    const currents: CertInfo[][] = [];
    const mine = [...issuers, ...own];
    const retireAfterMs = this.opts.retireAfterMs ?? 3 * (this.opts.resyncMs ?? 5000);
    const ops = caBundlePatch(webhooks, (current) => {
      const cas = decodeBundle(current);
      currents.push(cas);
      let keep = othersNeed;
      if (othersNeed) {
        const needed = new Set([...othersNeed, ...mine.map((c) => c.fingerprint)]);
        keep = new Set([...othersNeed, ...retiring(cas, needed, this.unneededSince, now.getTime(), retireAfterMs)]);
      }
      const want = desiredCas(cas, mine, keep, now);
      bundles.push(want);
      return encodeBundle(want);
    });
    const trusts = (list: CertInfo[][]) => list.every((b) => issuers.every((i) => b.some((c) => c.fingerprint === i.fingerprint)));
    // What is stored decides until our write has landed: a write refused (a race, a conflict) changes nothing.
    this.trustIs(trusts(currents), currents);
    if (ops.length === 0) return 'unchanged';
    // Written only onto the configuration we read (and the Leases after it): see the header.
    const guarded = mwc.metadata?.resourceVersion ? [{ op: 'test' as const, path: '/metadata/resourceVersion', value: mwc.metadata.resourceVersion }, ...ops] : ops;
    await this.opts.client.request('PATCH', path, { body: guarded, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
    this.lastPatchedAt = Date.now();
    this.trustIs(trusts(bundles), bundles);
    this.log.info({ webhooks: ops.length / 2, cas: bundles[0]?.length ?? 0, replicas: othersNeed === undefined ? 'unknown' : 'leases' }, 'caBundle written');
    return 'patched';
  }
}
