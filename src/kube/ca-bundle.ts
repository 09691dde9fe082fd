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
 *
 * In use, not only stored (issue 32): a caBundle the API server has stored
 * is not yet one it uses; its admission plugin reads webhook configurations
 * from an informer (k8s.io/apiserver admission/configuration/
 * mutating_webhook_manager.go) and builds a client per caBundle
 * (util/webhook/client.go, HookClient's cache key holds the bundle). So a
 * replica takes a CA as trusted only once the API server shows that it
 * admits with a configuration that trusts it: the write that makes it trusted
 * also appends a probe webhook (`<nonce>.ca-probe.sidecar-injector.io`) that
 * matches nothing but a Lease labelled with the nonce and calls a Service that
 * does not exist; a dry-run create of such a Lease then fails with the API
 * server naming that webhook exactly when its informer has the configuration
 * (mutating admission runs before validation, handlers/create.go, and the
 * probe Lease is invalid, so nothing is stored even by a server that ignored
 * dryRun). The probe is removed at once. The wait for it is bounded
 * (IN_USE_BOUND_MS); past the bound the replica goes on, logs it and counts
 * `unconfirmed`. A CA found trusted at the first check is taken as in use:
 * it was written before this replica started.
 *
 * failurePolicy once live (issue 32, install window): when the configuration
 * carries the annotation FAILURE_POLICY_ANNOTATION (the chart renders its
 * webhooks `Ignore` and names the wanted policy there), the probe also adds,
 * before the marker, a copy of the real webhook's clientConfig; the marker is
 * reached only if the API server called the real Service successfully. Then
 * the replicas write the wanted policy into every webhook: a fresh install
 * refuses nothing before a replica can answer.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { KubeError, type KubeClient } from './client.js';
import { certInfo, issuerOf, pemBlocks, type CertInfo } from '../tls/inspect.js';
import { SyncLoop } from './sync-loop.js';
import type { ReplicaLease } from './replica-lease.js';

export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';

/** unconfirmed: the API server did not show within IN_USE_BOUND_MS that it uses a bundle trusting this replica (it went on anyway). */
export type CaBundleResult = 'patched' | 'unchanged' | 'failure' | 'unconfirmed';

interface WebhookLike {
  name?: string;
  failurePolicy?: string;
  clientConfig?: { caBundle?: string; service?: { namespace?: string } };
}

export type JsonPatchOp = { op: 'test' | 'add' | 'remove'; path: string; value?: unknown };

/** Probe webhooks are named `<nonce>[-live].` + this; nothing else in a configuration is. */
export const PROBE_DOMAIN = 'ca-probe.sidecar-injector.io';
/** The label that lets a probe webhook match the probe Lease, and nothing else. */
export const PROBE_LABEL = 'sidecar-injector.io/ca-probe';
/** On the configuration: the failurePolicy its webhooks get once the API server has called the webhook (the chart renders `Ignore` until then). */
export const FAILURE_POLICY_ANNOTATION = 'sidecar-injector.io/failure-policy';
/** How long a replica waits for the API server to show it uses a caBundle before going on without (logged, counted `unconfirmed`). */
export const IN_USE_BOUND_MS = 3000;
/** A probe webhook older than this was left by a replica that died mid-probe: any replica removes it. */
export const PROBE_STALE_MS = 60_000;
/** The probe's marker webhook calls this Service, which must not exist: the API server fails the call itself, with no network. */
export const PROBE_SERVICE = 'sidecar-injector-ca-probe-absent';

export const isProbeWebhook = (name: string | undefined): boolean => name?.endsWith(`.${PROBE_DOMAIN}`) ?? false;

/** When a probe nonce was made (its first part, base 36 milliseconds); NaN when not one of ours. */
export const probeMadeAt = (name: string): number => Number.parseInt(name.split(/[-.]/)[0] ?? '', 36);

/** One probe: its nonce, and its webhooks in order (the live copy, when there is one, before the marker). */
export interface Probe {
  nonce: string;
  marker: string;
  live: string | undefined;
}

export function newProbe(live: boolean, now = Date.now()): Probe {
  const nonce = `${now.toString(36)}-${randomBytes(3).toString('hex')}`;
  return { nonce, marker: `${nonce}.${PROBE_DOMAIN}`, live: live ? `${nonce}-live.${PROBE_DOMAIN}` : undefined };
}

/**
 * The probe's webhooks: they match only a CREATE of a Lease labelled with the nonce in `namespace` (the
 * replicas may create Leases there). The marker calls a Service that does not exist, so once the API server
 * admits with this configuration, the probe Lease fails naming the marker. The live copy, before it, calls
 * the real webhook's clientConfig: the marker is reached only when that call succeeded. Pure.
 */
export function probeWebhooks(probe: Probe, namespace: string, real?: { clientConfig?: object }): object[] {
  const base = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    timeoutSeconds: 1,
    matchPolicy: 'Exact',
    reinvocationPolicy: 'Never',
    rules: [{ apiGroups: ['coordination.k8s.io'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['leases'], scope: 'Namespaced' }],
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
    objectSelector: { matchLabels: { [PROBE_LABEL]: probe.nonce } },
  };
  const marker = { name: probe.marker, ...base, clientConfig: { service: { namespace, name: PROBE_SERVICE, path: '/ca-probe' } } };
  if (!probe.live || !real?.clientConfig) return [marker];
  return [{ name: probe.live, ...base, clientConfig: structuredClone(real.clientConfig) }, marker];
}

/**
 * What a dry-run create of the probe Lease showed: not seen (the API server admits with an older configuration,
 * or something else answered); seen (the marker was called: the configuration is in use), and with a live copy,
 * `live` whether the real webhook answered it (when not, `why`).
 */
export type ProbeOutcome = { seen: false; why: string } | { seen: true; live?: boolean; why?: string };

export function probeOutcome(probe: Probe, err: unknown): ProbeOutcome {
  const message = err instanceof Error ? err.message : String(err);
  // Failing closed, the dispatcher answers 500 "failed calling webhook \"NAME\": …" (webhook/mutating/dispatcher.go, util/webhook/error.go).
  if (err instanceof KubeError && err.status === 500) {
    if (message.includes(`failed calling webhook "${probe.marker}"`)) return probe.live ? { seen: true, live: true } : { seen: true };
    if (probe.live && message.includes(`failed calling webhook "${probe.live}"`)) return { seen: true, live: false, why: message };
  }
  return { seen: false, why: message };
}

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

/** The patch that gives every webhook but the probes its wanted caBundle (base64 PEM, or a function of its current one); empty when all have it. Pure. */
export function caBundlePatch(webhooks: readonly WebhookLike[], want: string | ((current: string | undefined) => string)): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  webhooks.forEach((w, i) => {
    if (isProbeWebhook(w.name)) return;
    const caBundle = typeof want === 'string' ? want : want(w.clientConfig?.caBundle);
    if (w.clientConfig?.caBundle === caBundle) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    // `add` sets a member whether or not it exists; clientConfig itself is required by the API.
    ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle });
  });
  return ops;
}

/** Removes the named webhooks, highest index first so each index still holds; each guarded by a test of its name. Pure. */
export function removeWebhooksPatch(webhooks: readonly WebhookLike[], remove: (name: string) => boolean): JsonPatchOp[] {
  return webhooks
    .map((w, i) => ({ name: w.name ?? '', i }))
    .filter((w) => remove(w.name))
    .reverse()
    .flatMap(({ name, i }) => [
      { op: 'test' as const, path: `/webhooks/${i}/name`, value: name },
      { op: 'remove' as const, path: `/webhooks/${i}` },
    ]);
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
  /**
   * Where the probe Lease is dry-run created (the replicas may create Leases there). Default: the namespace
   * of our service account (a SelfSubjectReview), else of the webhook's Service.
   */
  probeNamespace?: string;
  /** How often the Lease is renewed and the bundle checked again (ms). */
  resyncMs?: number;
  /** How long a CA no live replica needs stays in the bundle (ms); default three resyncs. */
  retireAfterMs?: number;
  /** The bound on waiting for the API server to show it uses a bundle (ms); default IN_USE_BOUND_MS. */
  inUseBoundMs?: number;
  logger: Logger;
  onResult(result: CaBundleResult): void;
  /** After each check: whether the bundle trusts what this replica serves (and is about to), and how many CAs it holds. */
  onTrust?(trusted: boolean, cas: number): void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

interface ConfigurationLike {
  metadata?: { resourceVersion?: string; annotations?: Record<string, string> };
  webhooks?: WebhookLike[];
}

export class CaBundleWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  /** The CA of the certificate in force; undefined until the first read (then it is the one on disk). */
  private serving: CertInfo | undefined;
  /** The CA of the certificate on disk, which serve.ts puts in force once it is trusted. */
  private pending: CertInfo | undefined;
  /** The last check found both in every webhook's bundle (or nothing to check: no issuer found). */
  private bundleTrusts = false;
  /** Fingerprints of serving and pending at the last check: what must be trusted. */
  private needs: string[] = [];
  /** CAs the API server has shown it trusts (or that were trusted before we started), until the bundle drops them. */
  private readonly inUse = new Set<string>();
  private checks = 0;
  /** The probe in flight, if any: trust() waits for it. */
  private confirming: Promise<void> | undefined;
  /** The API server called the real webhook once (a live probe): the wanted failurePolicy may be written. */
  private liveShown = false;
  /** A live probe that failed is tried again at the next round after this (doubling from a resync to 5 minutes). */
  private liveProbeAt = 0;
  private liveProbeEveryMs = 0;
  private stopped = false;
  private leaseProblemLogged = false;
  private namespaceFound: string | null | undefined;
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
    this.stopped = true;
    this.loop.stop();
  }

  /** Stops, and deletes the Lease so the others stop counting this replica now (shutdown). */
  async release(): Promise<void> {
    this.stop();
    await this.opts.lease?.release();
  }

  /** Writes now and resolves once the files on disk are trusted in the stored bundle (or the writer stopped, or `boundMs` passed: false). */
  async ensureTrusted(boundMs: number): Promise<boolean> {
    this.loop.sync();
    return this.loop.settled(boundMs);
  }

  /**
   * Resolves once the API server has shown that it uses a bundle trusting what this replica serves and is
   * about to (a probe in flight is awaited, and a round that needs one starts it), or each probe hit its
   * bound: whether trusted() holds. False at once when the stored bundle does not trust it.
   */
  async whenInUse(): Promise<boolean> {
    for (let rounds = 0; !this.trusted() && !this.stopped && rounds < 4; rounds += 1) {
      if (this.confirming) await this.confirming;
      else if (!this.bundleTrusts || !(await this.loop.settled(this.bound())) || !this.confirming) break;
    }
    return this.trusted();
  }

  /** The certificate on disk is now the one served: its CA is what we serve with. */
  inForce(): void {
    this.serving = this.pending;
    this.loop.sync();
  }

  /** Whether the API server trusts what this replica serves and is about to: in the stored bundle, and shown in use (or past the bound). */
  trusted(): boolean {
    return this.bundleTrusts && this.needs.every((fp) => this.inUse.has(fp));
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

  private path(): string {
    return MWC_PATH + encodeURIComponent(this.opts.name);
  }

  /** Where probe Leases go: given, else our service account's namespace (asked once), else the webhook Service's. */
  private async probeNamespace(webhooks: readonly WebhookLike[]): Promise<string | undefined> {
    if (this.opts.probeNamespace) return this.opts.probeNamespace;
    if (this.namespaceFound === undefined) {
      try {
        // authentication.k8s.io/v1 SelfSubjectReview (GA in 1.28): any authenticated user may ask who it is.
        const { body } = await this.opts.client.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
          timeoutMs: 10_000,
        });
        const user = (body as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username ?? '';
        this.namespaceFound = /^system:serviceaccount:([^:]+):/.exec(user)?.[1] ?? null;
      } catch {
        this.namespaceFound = null;
      }
    }
    return this.namespaceFound ?? webhooks.find((w) => !isProbeWebhook(w.name) && w.clientConfig?.service?.namespace)?.clientConfig?.service?.namespace;
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
    const { body } = await this.opts.client.request('GET', this.path(), { timeoutMs: 10_000 });
    const othersNeed = published && this.opts.lease ? await this.othersNeed(this.opts.lease) : undefined;
    const mwc = body as ConfigurationLike;
    const webhooks = mwc.webhooks ?? [];
    const now = new Date();
    const bundles: CertInfo[][] = [];
    const currents: CertInfo[][] = [];
    const mine = [...issuers, ...own];
    const retireAfterMs = this.opts.retireAfterMs ?? 3 * (this.opts.resyncMs ?? 5000);
    let firstWanted: string | undefined;
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
      firstWanted ??= encodeBundle(want);
      return encodeBundle(want);
    });
    const trusts = (list: CertInfo[][]) => list.every((b) => issuers.every((i) => b.some((c) => c.fingerprint === i.fingerprint)));
    this.needs = issuers.map((c) => c.fingerprint);
    const trustedBefore = trusts(currents);
    const trustedAfter = ops.length > 0 ? trusts(bundles) : trustedBefore;
    // A CA the bundle no longer holds is no longer known to be in use.
    const held = new Set((ops.length > 0 ? bundles : currents).flatMap((b) => b.map((c) => c.fingerprint)));
    for (const fp of [...this.inUse]) if (!held.has(fp)) this.inUse.delete(fp);
    if (this.checks === 0 && trustedBefore) for (const fp of this.needs) this.inUse.add(fp); // written before we started
    this.checks += 1;
    const covered = this.needs.every((fp) => this.inUse.has(fp));
    const policy = wantedPolicy(mwc);
    const unarmed = policy !== undefined && webhooks.some((w) => !isProbeWebhook(w.name) && w.failurePolicy !== policy);
    const wantsLive = unarmed && policy === 'Fail' && !this.liveShown && Date.now() >= this.liveProbeAt;
    // Leftovers of a replica that died mid-probe (not ours: ours are removed by the probe itself).
    const stale = removeWebhooksPatch(webhooks, (n) => isProbeWebhook(n) && !(Date.now() - probeMadeAt(n) < PROBE_STALE_MS));
    const arm = policy && unarmed && (policy === 'Ignore' || this.liveShown) ? armPatch(webhooks, policy) : [];

    // What is stored decides until our write has landed: a write refused (a race, a conflict) changes nothing.
    this.trustIs(trustedBefore, currents);
    const namespace = trustedAfter && (!covered || wantsLive) && !this.confirming ? await this.probeNamespace(webhooks) : undefined;
    // The write that makes us trusted carries the probe itself: the API server showing the probe shows that write.
    const probe = namespace && ops.length > 0 && !trustedBefore && !covered ? newProbe(wantsLive) : undefined;
    const probeOps = probe && namespace ? probeWebhooks(probe, namespace, { clientConfig: realClientConfig(webhooks, firstWanted) }).map((value) => ({ op: 'add' as const, path: '/webhooks/-', value })) : [];
    const all = [...ops, ...arm, ...stale, ...probeOps];
    if (all.length > 0) {
      // Written only onto the configuration we read (and the Leases after it): see the header.
      const guarded = mwc.metadata?.resourceVersion ? [{ op: 'test' as const, path: '/metadata/resourceVersion', value: mwc.metadata.resourceVersion }, ...all] : all;
      await this.opts.client.request('PATCH', this.path(), { body: guarded, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
      if (arm.length > 0) this.log.info({ failurePolicy: policy }, 'failurePolicy written: the API server has called the webhook');
    }
    if (ops.length > 0) {
      this.trustIs(trustedAfter, bundles);
      this.log.info({ webhooks: ops.length / 2, cas: bundles[0]?.length ?? 0, replicas: othersNeed === undefined ? 'unknown' : 'leases' }, 'caBundle written');
    }
    if (probe && namespace) this.confirm(probe, namespace, false, true);
    else if (namespace) this.confirm(newProbe(wantsLive), namespace, true, !covered);
    else if (trustedAfter && !covered && !this.confirming) this.unconfirmable();
    return all.length > 0 ? 'patched' : 'unchanged';
  }

  private bound(): number {
    return this.opts.inUseBoundMs ?? IN_USE_BOUND_MS;
  }

  /** A wait that stop() need not cut short (at most the bound), unref'd so it never holds the process. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
  }

  /** Runs `task` in the background (the Lease renewals go on); whenInUse() waits for it; a need that came meanwhile gets its own round. */
  private background(task: () => Promise<void>): void {
    const running = task().finally(() => {
      this.confirming = undefined;
      if (!this.stopped && (!this.trusted() || this.liveShown)) this.loop.sync();
    });
    this.confirming = running;
  }

  /** No namespace to probe in (no service account, a url webhook): nothing can show the bundle in use, so the bound is the wait (logged, counted). */
  private unconfirmable(): void {
    const needs = [...this.needs];
    const started = Date.now();
    this.background(async () => {
      this.log.warn({ boundMs: this.bound() }, 'no namespace for a probe Lease: cannot show that the API server uses the caBundle; waiting the bound');
      await this.pause(this.bound());
      this.settle({ seen: false, why: 'no namespace for a probe Lease' }, started, needs, true);
    });
  }

  /**
   * One probe: add it (unless the write carried it), dry-run until the API server shows it or the bound,
   * remove it. `forTrust`: some of `needs` were not known in use (else the probe only asks whether the
   * webhook answers, for the failurePolicy).
   */
  private confirm(probe: Probe, namespace: string, add: boolean, forTrust: boolean): void {
    const started = Date.now();
    const needs = [...this.needs];
    this.background(async () => {
      let outcome: ProbeOutcome = { seen: false, why: 'not probed' };
      let added = !add;
      try {
        added ||= await this.addProbe(probe, namespace, needs, started);
        if (added) outcome = await this.poll(probe, namespace, started);
      } catch (err) {
        outcome = { seen: false, why: (err as Error).message };
      } finally {
        await this.removeProbe(probe).catch((err: Error) => this.log.warn({ err: err.message, probe: probe.marker }, 'probe webhook not removed: a replica removes it within a minute'));
      }
      // Not added because the bundle no longer trusts what we need: the next round writes it again.
      if (added || outcome.why !== 'not probed') this.settle(outcome, started, needs, forTrust);
    });
  }

  private settle(outcome: ProbeOutcome, started: number, needs: readonly string[], forTrust: boolean): void {
    if (this.stopped) return;
    const afterMs = Date.now() - started;
    if (outcome.seen && outcome.live) this.liveShown = true;
    else if (outcome.seen && outcome.live === false) {
      // Not callable yet (no replica ready behind the Service): ask again later, less and less often.
      this.liveProbeEveryMs = Math.min(300_000, Math.max(this.opts.resyncMs ?? 5000, this.liveProbeEveryMs * 2));
      this.liveProbeAt = Date.now() + this.liveProbeEveryMs;
    }
    if (forTrust) {
      if (outcome.seen) this.log.info({ afterMs, ...(outcome.why ? { webhookNotCalled: outcome.why } : {}) }, 'the API server uses the caBundle');
      else {
        this.log.warn({ afterMs, boundMs: this.bound(), last: outcome.why }, 'the API server did not show that it uses the caBundle within the bound; going on');
        this.opts.onResult('unconfirmed');
      }
      // Past the bound too: the bound is the most it waits.
      for (const fp of needs) this.inUse.add(fp);
    } else if (outcome.seen && outcome.live) this.log.info({ afterMs }, 'the API server called the webhook');
    else this.log.debug({ afterMs, why: outcome.why }, 'the API server cannot call the webhook yet');
  }

  /** Appends the probe onto a configuration whose bundles trust `needs`, each bundle guarded by a test of what was read; false when they no longer trust them. */
  private async addProbe(probe: Probe, namespace: string, needs: readonly string[], started: number): Promise<boolean> {
    for (;;) {
      const mwc = (await this.opts.client.request('GET', this.path(), { timeoutMs: 10_000 })).body as ConfigurationLike;
      const webhooks = mwc.webhooks ?? [];
      const mains = webhooks.map((w, i) => ({ w, i })).filter(({ w }) => !isProbeWebhook(w.name));
      if (!mains.every(({ w }) => needs.every((fp) => decodeBundle(w.clientConfig?.caBundle).some((c) => c.fingerprint === fp)))) return false;
      const ops: JsonPatchOp[] = [
        ...mains.flatMap(({ w, i }) => [
          { op: 'test' as const, path: `/webhooks/${i}/name`, value: w.name },
          ...(w.clientConfig?.caBundle === undefined ? [] : [{ op: 'test' as const, path: `/webhooks/${i}/clientConfig/caBundle`, value: w.clientConfig.caBundle }]),
        ]),
        ...probeWebhooks(probe, namespace, { clientConfig: realClientConfig(webhooks) }).map((value) => ({ op: 'add' as const, path: '/webhooks/-', value })),
      ];
      try {
        await this.opts.client.request('PATCH', this.path(), { body: ops, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
        return true;
      } catch (err) {
        // 422: a test failed (another writer in between): read again, until the bound.
        if (!(err instanceof KubeError && err.status === 422) || this.stopped || Date.now() - started > this.bound()) throw err;
      }
    }
  }

  /** Dry-run creates of the probe Lease until the API server shows the probe, or the bound (polling, doubling from 10 ms to 200 ms). */
  private async poll(probe: Probe, namespace: string, started: number): Promise<ProbeOutcome> {
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: `ca-probe-${probe.nonce}`, labels: { [PROBE_LABEL]: probe.nonce } },
      // Invalid (coordination validation: must be greater than 0), so it is never stored, even by a server that ignored dryRun.
      spec: { leaseDurationSeconds: 0 },
    };
    let outcome: ProbeOutcome = { seen: false, why: 'not probed' };
    for (let delay = 10; !this.stopped; delay = Math.min(200, delay * 2)) {
      try {
        // Each answer within what is left of the bound (a live copy's call may take its 1 s timeout).
        const timeoutMs = Math.max(1500, this.bound() - (Date.now() - started));
        await this.opts.client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases?dryRun=All`, { body: lease, timeoutMs });
        outcome = { seen: false, why: 'the probe Lease was accepted' };
      } catch (err) {
        outcome = probeOutcome(probe, err);
      }
      if (outcome.seen) return outcome;
      const left = this.bound() - (Date.now() - started);
      if (left <= 0) return outcome;
      await this.pause(Math.min(delay, left));
    }
    return outcome;
  }

  /** Removes the probe's webhooks (a conflict is read again, a few times). */
  private async removeProbe(probe: Probe): Promise<void> {
    const ours = (n: string) => n === probe.marker || n === probe.live;
    for (let attempt = 0; ; attempt += 1) {
      const mwc = (await this.opts.client.request('GET', this.path(), { timeoutMs: 10_000 })).body as ConfigurationLike;
      const ops = removeWebhooksPatch(mwc.webhooks ?? [], ours);
      if (ops.length === 0) return;
      try {
        await this.opts.client.request('PATCH', this.path(), { body: ops, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
        return;
      } catch (err) {
        if (!(err instanceof KubeError && err.status === 422) || attempt >= 4) throw err;
      }
    }
  }
}

/** The failurePolicy the configuration's annotation asks for, if it names one. */
function wantedPolicy(mwc: ConfigurationLike): 'Fail' | 'Ignore' | undefined {
  const v = mwc.metadata?.annotations?.[FAILURE_POLICY_ANNOTATION];
  return v === 'Fail' || v === 'Ignore' ? v : undefined;
}

/** Writes `policy` into every webhook but the probes that lacks it, each guarded by a test of its name. Pure. */
export function armPatch(webhooks: readonly WebhookLike[], policy: string): JsonPatchOp[] {
  return webhooks.flatMap((w, i) =>
    isProbeWebhook(w.name) || w.failurePolicy === policy
      ? []
      : [
          { op: 'test' as const, path: `/webhooks/${i}/name`, value: w.name },
          { op: 'add' as const, path: `/webhooks/${i}/failurePolicy`, value: policy },
        ],
  );
}

/** The first real webhook's clientConfig (with the bundle being written, when one is), for the probe's live copy. */
function realClientConfig(webhooks: readonly WebhookLike[], caBundle?: string): object | undefined {
  const real = webhooks.find((w) => !isProbeWebhook(w.name));
  if (!real?.clientConfig) return undefined;
  return { ...real.clientConfig, ...(caBundle ? { caBundle } : {}) };
}
