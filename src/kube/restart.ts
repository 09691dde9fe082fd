/**
 * `audit --restart`: rolls the workloads behind missed and stale pods the
 * way `kubectl rollout restart` does (a strategic merge patch of
 * `spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]`,
 * kubectl's polymorphichelpers/objectrestarter.go), a few at a time, and
 * waits for each rollout as `kubectl rollout status` does (core/rollout.ts),
 * with a timeout per workload that is reported and does not stop the rest.
 */
import { rolloutStatus, type RolloutKind } from '../core/rollout.js';
import type { KubeClient } from './client.js';

export interface RestartTarget {
  namespace: string;
  kind: RolloutKind;
  name: string;
}

export interface RestartResult extends RestartTarget {
  outcome: 'rolled-out' | 'timed-out' | 'failed';
  message: string;
  seconds: number;
}

export interface RestartOptions {
  maxConcurrent: number;
  timeoutMs: number;
  pollMs: number;
  /** One progress line per event (started, finished), for a person watching. */
  progress(line: string): void;
}

const PLURAL: Record<RolloutKind, string> = { Deployment: 'deployments', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets' };

export const describeTarget = (t: RestartTarget) => `${t.kind.toLowerCase()}/${t.name} -n ${t.namespace}`;

/** kubectl writes time.Now() as RFC 3339, seconds precision. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

async function restartOne(client: KubeClient, t: RestartTarget, opts: RestartOptions): Promise<RestartResult> {
  const path = `/apis/apps/v1/namespaces/${encodeURIComponent(t.namespace)}/${PLURAL[t.kind]}/${encodeURIComponent(t.name)}`;
  const started = Date.now();
  const done = (outcome: RestartResult['outcome'], message: string): RestartResult => {
    const result = { ...t, outcome, message, seconds: Math.round((Date.now() - started) / 100) / 10 };
    opts.progress(`${describeTarget(t)}: ${outcome === 'rolled-out' ? message : `${outcome}: ${message}`} (${result.seconds}s)`);
    return result;
  };
  opts.progress(`restarting ${describeTarget(t)}`);
  try {
    const patch = { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': rfc3339(new Date()) } } } } };
    await client.request('PATCH', path, { body: patch, contentType: 'application/strategic-merge-patch+json', timeoutMs: 10_000 });
    let last = 'waiting for the rollout to be observed';
    while (Date.now() - started < opts.timeoutMs) {
      const { body } = await client.request('GET', path, { timeoutMs: 10_000 });
      const status = rolloutStatus(t.kind, body);
      if (status.done) return done('rolled-out', status.message);
      if (status.failed) return done('failed', status.message);
      last = status.message;
      await new Promise((r) => setTimeout(r, Math.min(opts.pollMs, Math.max(0, opts.timeoutMs - (Date.now() - started)))));
    }
    return done('timed-out', `not complete after ${Math.round(opts.timeoutMs / 1000)}s: ${last}`);
  } catch (err) {
    return done('failed', (err as Error).message);
  }
}

/** At most `maxConcurrent` rollouts at a time; results in the order of `targets`. */
export async function restartWorkloads(client: KubeClient, targets: readonly RestartTarget[], opts: RestartOptions): Promise<RestartResult[]> {
  const results: RestartResult[] = new Array(targets.length);
  const queue = targets.map((t, i) => [t, i] as const);
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) results[item[1]] = await restartOne(client, item[0], opts);
  };
  await Promise.all(Array.from({ length: Math.min(opts.maxConcurrent, targets.length) }, worker));
  return results;
}
