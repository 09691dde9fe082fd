/**
 * `audit`: which running pods do not have what the policy says they must
 * have. The webhook's rules (core/audit.ts) over every pod in scope, grouped
 * by the workload to restart. Exit 1 when anything is missed or stale, 0 when
 * clean, 2 on error (for CI and cron).
 */
import type { CompiledConfig } from '../core/config.js';
import type { AuditReport } from '../core/audit.js';
import { featuresOf } from '../core/kube-version.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile, parseConfigText } from '../config/load.js';
import { runAudit } from '../kube/audit.js';
import { connectCluster, type KubeClient } from '../kube/client.js';
import { detectServerFeatures } from '../kube/features.js';
import { forEachPage } from '../kube/list.js';
import { kubeVersionFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const AUDIT_FLAGS: FlagSpecs = {
  namespace: { type: 'string', short: 'n', help: 'audit one namespace' },
  'all-namespaces': { type: 'boolean', short: 'A', help: 'audit every namespace (the default)' },
  config: { type: 'string', env: true, help: "profiles config file (default: the in-cluster webhook's ConfigMap, else the built-in example)" },
  output: { type: 'string', short: 'o', default: 'table', help: 'table or json' },
  kubeconfig: { type: 'string', env: true, help: 'kubeconfig file (default: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config)' },
  'kube-version': { type: 'string', help: 'Kubernetes version X.Y to assume instead of asking the API server (nativeSidecar: auto)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const AUDIT_USAGE = `Usage: sidecar-injector audit [-n NS | -A] [FLAGS]

Lists running pods that the current rules would inject but that carry no
status annotation (missed: created while the webhook was down, or before
their namespace was labelled), pods injected with another config revision
(stale), and pods the rules would inject but cannot (conflict), grouped by
the workload to restart. Exit 1 when anything is missed or stale, 0 when
clean, 2 on error.

Example:
  sidecar-injector audit -A
  sidecar-injector audit -n shop -o json | jq '.workloads[].action'`;

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
  return `${c.pods} pods: ${c.missed} missed, ${c.stale} stale, ${c.conflict} conflict, ${c.injected} injected`;
}

export async function runAuditCommand(argv: string[], io: CommandIO, opts: { lean?: boolean } = {}): Promise<number> {
  const { flags } = parseFlags(AUDIT_FLAGS, argv, io.env);
  const namespace = flags.namespace as string | undefined;
  if (namespace !== undefined && flags['all-namespaces']) throw new UsageError('-n and -A exclude each other');
  const format = flags.output as string;
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o: expected table or json, got "${format}"`);
  const kubeVersion = kubeVersionFlag(flags['kube-version'] as string | undefined);
  try {
    let client: KubeClient | undefined;
    try {
      client = await connectCluster({ kubeconfig: flags.kubeconfig as string | undefined, env: io.env, lean: opts.lean, kubectlDefaults: true });
    } catch (err) {
      throw new AuditError((err as Error).message);
    }
    if (!client) throw new AuditError('no cluster: give --kubeconfig, set KUBECONFIG, have ~/.kube/config, or run in a pod');
    const config = await chooseConfig(client, flags.config as string | undefined, io);
    io.err(`config: ${config.source} (revision ${config.compiled.revision})\n`);
    const server = kubeVersion ? featuresOf(kubeVersion) : (await detectServerFeatures(client)).features;
    const report = await runAudit({ client, config: config.compiled, server, namespace });

    if (format === 'json') {
      const body = { config: { source: config.source, revision: config.compiled.revision }, scope: namespace ?? '*', counts: report.counts, workloads: report.workloads() };
      io.out(`${JSON.stringify(body, null, 2)}\n`);
    } else {
      const findings = report.workloads();
      if (findings.length > 0) {
        const rows = [['STATE', 'NAMESPACE', 'WORKLOAD', 'PODS', 'EXAMPLE', 'ACTION']];
        for (const f of findings) rows.push([f.state, f.namespace, `${f.kind.toLowerCase()}/${f.name}`, String(f.pods), f.examples[0] ?? '', f.action]);
        io.out(`${table(rows)}\n\n`);
      }
      io.out(`${summary(report)}${findings.length === 0 ? ': nothing to do' : ''}\n`);
    }
    return report.failing ? 1 : 0;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    io.err(`sidecar-injector audit: ${err instanceof AuditError ? err.message : (err as Error).message}\n`);
    return 2;
  }
}
