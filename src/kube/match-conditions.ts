/**
 * `--webhook-config NAME`: keeps the matchConditions of the named
 * MutatingWebhookConfiguration in step with the config in force (SPEC 7,
 * Scope). Written by the replicas like the caBundle: a JSON patch guarded by
 * a `test` of each webhook's name, touching only `matchConditions`, so Helm's
 * three-way merge leaves it alone and replicas with one config converge.
 *
 * Which webhook gets which: only an entry whose namespaceSelector cannot
 * select a namespace labelled `<prefix>/injection=enabled` gets the
 * conditions of core/match-conditions.ts (rule 7 cannot be seen from CEL);
 * conditions found on any other entry are removed, so it sends every pod.
 * Such an entry is logged once, with how to split it as the chart does.
 *
 * Safety: a patch the API server rejects (an expression it cannot compile,
 * over its limits) changes nothing, since a JSON patch applies whole or not
 * at all; then the conditions are removed, so every pod is sent again rather
 * than pods that ask being kept out by conditions of an older config. Both
 * are logged and counted. A server that drops the field (feature gate off)
 * is noticed in the answer and left alone.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { canCarryConditions, conditionsForEntry, selectsOnlyEnabledNamespaces, type MatchCondition } from '../core/match-conditions.js';
import type { LabelSelector } from '../core/selector.js';
import { isProbeWebhook, MWC_PATH } from './ca-bundle.js';
import { KubeError, type KubeClient } from './client.js';
import { SyncLoop } from './sync-loop.js';

export type MatchConditionsResult = 'patched' | 'unchanged' | 'rejected' | 'unsupported' | 'failure';

export interface WebhookEntry {
  name?: string;
  namespaceSelector?: LabelSelector;
  matchConditions?: MatchCondition[];
}

export type ConditionsOp = { op: 'test' | 'add' | 'remove'; path: string; value?: unknown };

/** Entries that send every pod although conditions exist, and could save calls by being split by the namespace label. */
export function unsplitEntries(webhooks: readonly WebhookEntry[], conditions: readonly MatchCondition[], namespaceLabel: string): WebhookEntry[] {
  if (conditions.length === 0) return [];
  // A caBundle probe webhook (ca-bundle.ts) lives a moment and matches only its probe Lease: not an entry to split.
  return webhooks.filter((w) => !isProbeWebhook(w.name) && !canCarryConditions(w.namespaceSelector, namespaceLabel) && !selectsOnlyEnabledNamespaces(w.namespaceSelector, namespaceLabel));
}

/** The patch that gives every entry the conditions it should have; empty when all have them. Pure. */
export function matchConditionsPatch(webhooks: readonly WebhookEntry[], conditions: readonly MatchCondition[], namespaceLabel: string): ConditionsOp[] {
  const ops: ConditionsOp[] = [];
  webhooks.forEach((w, i) => {
    const want = conditionsForEntry(w.namespaceSelector, conditions, namespaceLabel);
    const have = (w.matchConditions ?? []).map(({ name, expression }) => ({ name, expression }));
    if (isDeepStrictEqual(have, [...want].map(({ name, expression }) => ({ name, expression })))) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    if (want.length === 0) ops.push({ op: 'remove', path: `/webhooks/${i}/matchConditions` });
    else ops.push({ op: 'add', path: `/webhooks/${i}/matchConditions`, value: want });
  });
  return ops;
}

export interface MatchConditionsOptions {
  client: KubeClient;
  name: string;
  logger: Logger;
  /** The conditions of the config in force, and the namespace label key (`<prefix>/injection`). */
  desired(): { conditions: MatchCondition[]; namespaceLabel: string; revision: string };
  onResult(result: MatchConditionsResult): void;
  backoffInitialMs?: number;
}

export class MatchConditionsWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  /** Entries already logged as sending every pod: once per process. */
  private readonly unsplitLogged = new Set<string>();

  constructor(private readonly opts: MatchConditionsOptions) {
    this.log = opts.logger.child({ webhookConfiguration: opts.name });
    this.loop = new SyncLoop(async () => opts.onResult(await this.writeOnce()), {
      logger: this.log,
      what: 'matchConditions',
      backoffInitialMs: opts.backoffInitialMs,
      onFailure: () => opts.onResult('failure'),
    });
  }

  /** Asks for the conditions of the config in force to be written (after each reload). */
  sync(): void {
    this.loop.sync();
  }

  /**
   * Writes now, then checks again every `everyMs`: a configuration replaced or re-created (a re-install,
   * a GitOps tool applying the chart's manifest) gets its conditions back without waiting for a reload.
   */
  start(everyMs = 30_000): void {
    this.loop.every(everyMs);
  }

  stop(): void {
    this.loop.stop();
  }

  private path(): string {
    return MWC_PATH + encodeURIComponent(this.opts.name);
  }

  private async webhooks(): Promise<WebhookEntry[]> {
    const { body } = await this.opts.client.request('GET', this.path(), { timeoutMs: 10_000 });
    return (body as { webhooks?: WebhookEntry[] }).webhooks ?? [];
  }

  private patch(ops: ConditionsOp[]): Promise<{ body: unknown }> {
    return this.opts.client.request('PATCH', this.path(), { body: ops, contentType: 'application/json-patch+json', timeoutMs: 10_000 });
  }

  private logUnsplit(webhooks: readonly WebhookEntry[], conditions: readonly MatchCondition[], namespaceLabel: string): void {
    for (const w of unsplitEntries(webhooks, conditions, namespaceLabel)) {
      const name = w.name ?? '';
      if (this.unsplitLogged.has(name)) continue;
      this.unsplitLogged.add(name);
      this.log.info(
        { webhook: name, namespaceLabel },
        `webhook ${name} can select namespaces labelled ${namespaceLabel}=enabled, which matchConditions cannot see: it gets none and every pod it selects reaches the webhook. ` +
          `To save those calls, split it in two as the chart does: one entry with namespaceSelector ${namespaceLabel} In [enabled], one with NotIn [enabled] (that one gets the conditions)`,
      );
    }
  }

  private async writeOnce(): Promise<MatchConditionsResult> {
    const { conditions, namespaceLabel, revision } = this.opts.desired();
    const webhooks = await this.webhooks();
    this.logUnsplit(webhooks, conditions, namespaceLabel);
    const ops = matchConditionsPatch(webhooks, conditions, namespaceLabel);
    if (ops.length === 0) return 'unchanged';
    let answer: { body: unknown };
    try {
      answer = await this.patch(ops);
    } catch (err) {
      if (!(err instanceof KubeError && (err.status === 422 || err.status === 400))) throw err;
      this.log.error({ err: err.message, revision, conditions }, 'API server rejected the matchConditions; removing them so every pod is sent');
      const clear = matchConditionsPatch(await this.webhooks(), [], namespaceLabel);
      if (clear.length > 0) await this.patch(clear);
      return 'rejected';
    }
    const written = (answer.body as { webhooks?: WebhookEntry[] }).webhooks ?? [];
    const shouldCarry = written.filter((w) => conditionsForEntry(w.namespaceSelector, conditions, namespaceLabel).length > 0);
    if (shouldCarry.length > 0 && shouldCarry.every((w) => (w.matchConditions ?? []).length === 0)) {
      this.log.warn({ revision }, 'the API server dropped matchConditions (feature off?); every pod is sent');
      return 'unsupported';
    }
    this.log.info({ revision, conditions: conditions.map((c) => c.name) }, 'matchConditions written');
    return 'patched';
  }
}
