/**
 * `--patch-ca-bundle NAME`: keeps the caBundle of every webhook in the named
 * MutatingWebhookConfiguration equal to our `ca.crt`. Runs at start and after
 * each certificate reload, in the background (never on the admission path),
 * retrying with backoff until it succeeds or a newer request supersedes it.
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
import { SyncLoop } from './sync-loop.js';

export const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/';

export type CaBundleResult = 'patched' | 'unchanged' | 'failure';

interface WebhookLike {
  name?: string;
  clientConfig?: { caBundle?: string };
}

export type JsonPatchOp = { op: 'test' | 'add'; path: string; value: unknown };

/** The patch that puts `caBundle` (base64 PEM) into every webhook that lacks it; empty when all have it. Pure. */
export function caBundlePatch(webhooks: readonly WebhookLike[], caBundle: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  webhooks.forEach((w, i) => {
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
  /** ca.crt, PEM. */
  caPath: string;
  logger: Logger;
  onResult(result: CaBundleResult): void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export class CaBundleWriter {
  private readonly loop: SyncLoop;

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

  private async writeOnce(): Promise<CaBundleResult> {
    const pem = await readFile(this.opts.caPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${this.opts.caPath}: ${err.code ?? err.message}`);
    });
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${this.opts.caPath} holds no PEM certificate`);
    const caBundle = Buffer.from(pem).toString('base64');
    const path = MWC_PATH + encodeURIComponent(this.opts.name);
    const { body } = await this.opts.client.request('GET', path, { timeoutMs: 10_000 });
    const webhooks = ((body as { webhooks?: WebhookLike[] }).webhooks ?? []) as WebhookLike[];
    const ops = caBundlePatch(webhooks, caBundle);
    if (ops.length === 0) return 'unchanged';
    await this.opts.client.request('PATCH', path, { body: ops, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
    this.opts.logger.info({ webhookConfiguration: this.opts.name, webhooks: ops.length / 2 }, 'caBundle written');
    return 'patched';
  }
}
