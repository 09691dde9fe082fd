/**
 * `audit`: which running pods do not have what the policy says they must
 * have. The webhook's rules (core/audit.ts) over every pod in scope, grouped
 * by the workload to restart. Exit 1 when anything is missed, stale or orphaned, 0 when
 * clean, 2 on error (for CI and cron).
 */
import type { CompiledConfig } from '../core/config.js';
import type { AuditReport, WorkloadFinding } from '../core/audit.js';
import type { NextPod } from '../core/pod-diff.js';
import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { featuresOf } from '../core/kube-version.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile, parseConfigText } from '../config/load.js';
import type { WebhookScope } from '../core/scope.js';
import { RESTARTABLE, type RolloutKind } from '../core/rollout.js';
import type { KubeVersion } from '../core/kube-version.js';
import { findWebhookScope, runAudit, WEBHOOK_CONFIG_SELECTOR } from '../kube/audit.js';
import { describeTarget, restartWorkloads, type RestartResult, type RestartTarget } from '../kube/restart.js';
import { connectCluster, type KubeClient } from '../kube/client.js';
import { detectServerFeatures } from '../kube/features.js';
import { forEachPage } from '../kube/list.js';
import { durationFlag, intFlag, kubeVersionFlag, parseFlags, UsageError, type FlagSpecs, type ParsedFlags } from './args.js';
import type { CommandIO } from './io.js';

export const AUDIT_FLAGS: FlagSpecs = {
  namespace: { type: 'string', short: 'n', help: 'audit one namespace' },
  'all-namespaces': { type: 'boolean', short: 'A', help: 'audit every namespace (the default)' },
  config: { type: 'string', env: true, help: "profiles config file (default: the in-cluster webhook's ConfigMap, else the built-in example)" },
  output: { type: 'string', short: 'o', default: 'table', help: 'table or json' },
  kubeconfig: { type: 'string', env: true, help: 'kubeconfig file (default: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config)' },
  'kube-version': { type: 'string', help: 'Kubernetes version X.Y to assume instead of asking the API server (nativeSidecar: auto)' },
  'webhook-config': { type: 'string', env: true, help: "the MutatingWebhookConfiguration whose selectors decide which pods count (default: the chart's, by its label)" },
  diff: { type: 'boolean', default: false, help: 'show, per missed or stale workload, what its next pod would change (a unified diff of YAML; in -o json, structured, each change with its values before and after)' },
  restart: { type: 'boolean', default: false, help: 'roll the Deployments, StatefulSets and DaemonSets of missed, stale and orphaned pods, as kubectl rollout restart does' },
  'dry-run': { type: 'boolean', default: false, help: 'with --restart: print what would be restarted, change nothing' },
  'max-concurrent': { type: 'string', default: '1', help: 'with --restart: rollouts at a time' },
  'rollout-timeout': { type: 'string', default: '5m', help: 'with --restart: how long to wait for each rollout before reporting it and moving on' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const AUDIT_USAGE = `Usage: sidecar-injector audit [-n NS | -A] [FLAGS]

Lists running pods that the current rules would inject but that carry no
status annotation (missed: created while the webhook was down, or before
their namespace was labelled), pods injected with another config revision
(stale), pods injected with a SidecarProfile that has changed or is no longer
accepted (stale) or no longer exists (orphaned), and pods the rules would
inject but cannot (conflict), grouped by the workload to restart. Exit 1 when
anything is missed, stale or orphaned, 0 when clean, 2 on error.

Only pods the webhook configuration's namespaceSelector and objectSelector
send to the webhook count (the chart's configuration, found by its label, or
--webhook-config); without one, the rules alone, and stderr says so.

With --restart, the Deployments, StatefulSets and DaemonSets behind missed,
stale and orphaned pods (in -n NS: that namespace's only) are restarted as kubectl rollout restart does, --max-concurrent at
a time, each waited for (as kubectl rollout status) up to --rollout-timeout.
CronJobs, Jobs and bare pods are listed with what to do, never touched.
Exit 0 when every rollout completed and nothing else is left, 1 otherwise.
Needs get and patch on those kinds.

Example:
  sidecar-injector audit -A
  sidecar-injector audit -n shop -o json | jq '.workloads[].action'
  sidecar-injector audit -n shop --diff -o json | jq '.workloads[].next.initContainers.changed[]?.changes'
  sidecar-injector audit -A --restart --dry-run
  sidecar-injector audit -A --restart --max-concurrent 3`;

/** The label that marks the chart's ConfigMap holding the webhook's config (key config.yaml). */
export const CONFIG_MAP_SELECTOR = 'app.kubernetes.io/component=sidecar-injector-config';
export const CONFIG_MAP_KEY = 'config.yaml';

class AuditError extends Error {}

interface ConfigChoice {
  compiled: CompiledConfig;
  source: string;
}

async function chooseConfig(client: KubeClient, file: string | undefined, io: CommandIO): Promise<ConfigChoice> {
  const fromFile = async (path: string, source: string) => {
    const loaded = await loadConfigFile(path);
    if (!loaded.ok) throw new AuditError(`invalid config:\n${loaded.errors.map((e) => `  ${e}`).join('\n')}`);
    return { compiled: loaded.compiled, source };
  };
  if (file) return fromFile(file, file);
  const found: { namespace: string; name: string; text: string }[] = [];
  try {
    await forEachPage<{ metadata?: { name?: string; namespace?: string }; data?: Record<string, string> }>(
      client,
      `/api/v1/configmaps?labelSelector=${encodeURIComponent(CONFIG_MAP_SELECTOR)}`,
      100,
      (page) => {
        for (const cm of page.items ?? []) {
          const text = cm.data?.[CONFIG_MAP_KEY];
          if (text !== undefined) found.push({ namespace: cm.metadata?.namespace ?? '', name: cm.metadata?.name ?? '', text });
        }
      },
    );
  } catch (err) {
    io.err(`Warning: cannot list the webhook's ConfigMap (${(err as Error).message}); using the built-in example config\n`);
  }
  if (found.length > 1) throw new AuditError(`several ConfigMaps labelled ${CONFIG_MAP_SELECTOR} (${found.map((f) => `${f.namespace}/${f.name}`).join(', ')}): pick one with --config`);
  const cm = found[0];
  if (cm) {
    const source = `ConfigMap ${cm.namespace}/${cm.name}`;
    const parsed = parseConfigText(cm.text, source);
    if (!parsed.ok) throw new AuditError(`invalid config:\n${parsed.errors.map((e) => `  ${e}`).join('\n')}`);
    return { compiled: parsed.compiled, source };
  }
  return fromFile(BUILTIN_CONFIG_PATH, 'the built-in example config');
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 2))).join('').trimEnd()).join('\n');
}

function summary(report: AuditReport): string {
  const c = report.counts;
  return `${c.pods} pods: ${c.missed} missed, ${c.stale} stale, ${c.orphaned} orphaned, ${c.conflict} conflict, ${c.injected} injected`;
}

interface AuditFlags {
  namespace: string | undefined;
  diff: boolean;
  format: 'table' | 'json';
  kubeVersion: KubeVersion | undefined;
  restart: { dryRun: boolean; maxConcurrent: number; timeoutMs: number } | undefined;
}

function readAuditFlags(flags: ParsedFlags): AuditFlags {
  const namespace = flags.namespace as string | undefined;
  if (namespace !== undefined && flags['all-namespaces']) throw new UsageError('-n and -A exclude each other');
  const format = flags.output as string;
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o: expected table or json, got "${format}"`);
  if (flags['dry-run'] && !flags.restart) throw new UsageError('--dry-run goes with --restart');
  const restart = flags.restart
    ? {
        dryRun: flags['dry-run'] === true,
        maxConcurrent: intFlag(flags, 'max-concurrent', 1, 50),
        timeoutMs: durationFlag('rollout-timeout', flags['rollout-timeout'] as string, 1) ?? 300_000,
      }
    : undefined;
  return { namespace, diff: flags.diff === true, format, kubeVersion: kubeVersionFlag(flags['kube-version'] as string | undefined), restart };
}

async function connect(flags: ParsedFlags, io: CommandIO, lean: boolean | undefined): Promise<KubeClient> {
  let client: KubeClient | undefined;
  try {
    client = await connectCluster({ kubeconfig: flags.kubeconfig as string | undefined, env: io.env, lean, kubectlDefaults: true });
  } catch (err) {
    throw new AuditError((err as Error).message);
  }
  if (!client) throw new AuditError('no cluster: give --kubeconfig, set KUBECONFIG, have ~/.kube/config, or run in a pod');
  return client;
}

/** The webhook configuration's selectors, or undefined (rules only), said on stderr either way. */
async function chooseScope(client: KubeClient, name: string | undefined, io: CommandIO): Promise<WebhookScope[] | undefined> {
  const found = await findWebhookScope(client, name);
  if (found.ok) {
    io.err(`scope: ${found.source} (${found.webhooks.length} webhook${found.webhooks.length === 1 ? '' : 's'})\n`);
    return found.webhooks;
  }
  if (!found.none) throw new AuditError(found.problem);
  const why = found.reason ?? `no MutatingWebhookConfiguration labelled ${WEBHOOK_CONFIG_SELECTOR}`;
  io.err(`scope: ${why} (--webhook-config names one); counting every pod the rules would inject\n`);
  return undefined;
}

function printReport(report: AuditReport, config: ConfigChoice, a: AuditFlags, io: CommandIO, restarts: RestartResult[] | undefined): void {
  if (a.format === 'json') {
    const workloads = report.workloads().map(({ next, ...f }) => (next ? { ...f, next: structured(next, f.examples[0]) } : f));
    const body = { config: { source: config.source, revision: config.compiled.revision }, scope: a.namespace ?? '*', counts: report.counts, workloads, ...(restarts ? { restarts } : {}) };
    io.out(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  const findings = report.workloads();
  if (findings.length > 0) {
    const rows = [['STATE', 'NAMESPACE', 'WORKLOAD', 'PODS', 'EXAMPLE', 'ACTION']];
    for (const f of findings) rows.push([f.state, f.namespace, `${f.kind.toLowerCase()}/${f.name}`, String(f.pods), f.examples[0] ?? '', f.action]);
    io.out(`${table(rows)}\n\n`);
    if (a.diff) for (const f of findings) io.out(renderNext(f, io.outIsTerminal === true));
  }
  io.out(`${summary(report)}${findings.length === 0 ? ': nothing to do' : ''}\n`);
}

/**
 * -o json: the change as data. Its values (each changed field before and after, added and removed
 * parts whole) are the views' own objects, the ones renderNext prints: the table and the JSON say
 * the same. The whole views stay out.
 */
function structured(next: NextPod, pod: string | undefined): Record<string, unknown> {
  if (next.kind !== 'diff') return { pod, ...next };
  return { pod, kind: next.kind, ...next.change };
}

const COLOURS: Record<string, string> = { '+': '\x1b[32m', '-': '\x1b[31m', '@': '\x1b[36m' };

/** A workload's next pod as `kubectl diff` shows a change: a unified diff of YAML, coloured on a terminal. */
function renderNext(f: WorkloadFinding, colour: boolean): string {
  const title = `${f.kind.toLowerCase()}/${f.name} -n ${f.namespace}`;
  const next = f.next;
  if (!next) return '';
  if (next.kind === 'edited') return `# ${title}: not diffed: ${next.reason}\n\n`;
  if (next.kind === 'not-injected') return `# ${title}: its next pod would not be injected: ${next.reason}\n\n`;
  if (next.change.none) return `# ${title}: its next pod would be the same\n\n`;
  const text = createTwoFilesPatch(`${title} (running: pod ${f.examples[0] ?? '?'})`, `${title} (next pod)`, stringify(next.running), stringify(next.next), undefined, undefined, { context: 3 });
  const lines = text.split('\n').filter((l) => !l.startsWith('====') && !l.startsWith('Index: '));
  const paint = (l: string) => {
    const code = COLOURS[l.charAt(0)];
    return colour && code && !l.startsWith('---') && !l.startsWith('+++') ? `${code}${l}\x1b[0m` : l;
  };
  return `${lines.map(paint).join('\n')}\n`;
}

/** --restart: the restartable workloads of missed, stale and orphaned findings; the rest are reported as left. Exit code. */
async function restartFindings(client: KubeClient, report: AuditReport, a: NonNullable<AuditFlags['restart']>, io: CommandIO): Promise<{ code: number; results?: RestartResult[] }> {
  const findings = report.workloads().filter((f) => f.state !== 'conflict');
  const seen = new Set<string>();
  const targets: RestartTarget[] = [];
  for (const f of findings) {
    const key = `${f.namespace}/${f.kind}/${f.name}`;
    if (!RESTARTABLE.includes(f.kind) || seen.has(key)) continue;
    seen.add(key);
    targets.push({ namespace: f.namespace, kind: f.kind as RolloutKind, name: f.name });
  }
  const untouched = findings.filter((f) => !RESTARTABLE.includes(f.kind));
  for (const f of untouched) io.err(`not restarted: ${f.kind.toLowerCase()}/${f.name} -n ${f.namespace} (${f.state}): ${f.action}\n`);
  if (a.dryRun) {
    for (const t of targets) io.err(`would restart ${describeTarget(t)}\n`);
    return { code: findings.length > 0 ? 1 : 0 };
  }
  const results = await restartWorkloads(client, targets, { maxConcurrent: a.maxConcurrent, timeoutMs: a.timeoutMs, pollMs: Math.min(1000, a.timeoutMs / 10), progress: (line) => io.err(`${line}\n`) });
  const left = results.filter((r) => r.outcome !== 'rolled-out').length + untouched.length;
  io.err(`restart: ${results.length - results.filter((r) => r.outcome !== 'rolled-out').length} of ${results.length} rolled out${left > 0 ? `; ${left} workload${left === 1 ? '' : 's'} left` : ''}\n`);
  return { code: left > 0 ? 1 : 0, results };
}

export async function runAuditCommand(argv: string[], io: CommandIO, opts: { lean?: boolean } = {}): Promise<number> {
  const { flags } = parseFlags(AUDIT_FLAGS, argv, io.env);
  const a = readAuditFlags(flags);
  try {
    const client = await connect(flags, io, opts.lean);
    const config = await chooseConfig(client, flags.config as string | undefined, io);
    io.err(`config: ${config.source} (revision ${config.compiled.revision})\n`);
    const scope = await chooseScope(client, flags['webhook-config'] as string | undefined, io);
    const server = a.kubeVersion ? featuresOf(a.kubeVersion) : (await detectServerFeatures(client)).features;
    const report = await runAudit({ client, config: config.compiled, server, namespace: a.namespace, scope, diff: a.diff });
    if (!a.restart) {
      printReport(report, config, a, io, undefined);
      return report.failing ? 1 : 0;
    }
    if (a.format === 'table' || a.restart.dryRun) printReport(report, config, a, io, undefined);
    const restarted = await restartFindings(client, report, a.restart, io);
    if (a.format === 'json' && !a.restart.dryRun) printReport(report, config, a, io, restarted.results);
    return restarted.code;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    io.err(`sidecar-injector audit: ${err instanceof AuditError ? err.message : (err as Error).message}\n`);
    return 2;
  }
}
