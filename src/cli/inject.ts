/** `inject -f FILE|-`: what the webhook would do to every pod and pod template in a manifest stream. */
import { readFile } from 'node:fs/promises';
import type { CompiledConfig } from '../core/config.js';
import { injectWorkload, type WorkloadResult } from '../core/workloads.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { featuresOf, NEWEST } from '../core/kube-version.js';
import { kubeVersionFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';
import { formatManifests, parseManifests, type OutputDoc, type OutputFormat } from './manifests.js';
import { lookupOf, readProfileFiles } from './sidecar-profile-files.js';

export const INJECT_FLAGS: FlagSpecs = {
  file: { type: 'string', short: 'f', help: 'manifest file (YAML or JSON, multi-document); - reads stdin' },
  config: { type: 'string', env: true, help: 'profiles config file (the built-in example when absent)' },
  namespace: { type: 'string', short: 'n', default: 'default', help: "namespace for documents that name none (a document's own wins)" },
  'namespace-label': { type: 'string', multiple: true, help: 'a label of the namespace, k=v (repeatable); stands in for the cluster' },
  output: { type: 'string', short: 'o', default: 'yaml', help: 'yaml or json' },
  'kube-version': { type: 'string', help: 'Kubernetes version X.Y the pods go to; decides nativeSidecar: auto (default: the newest)' },
  profiles: { type: 'string', multiple: true, help: "SidecarProfile manifests (repeatable): served to pods of their namespace as the cluster's limits allow" },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const INJECT_USAGE = `Usage: sidecar-injector inject -f FILE|- [FLAGS]

Prints the manifests with sidecars injected into every Pod and every pod
template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), as
the webhook would inject them into pods created in the cluster. Other
documents pass through unchanged. Warnings go to stderr.

With --profiles, the SidecarProfiles in those files are served to pods of
their namespace (a document without one gets --namespace), judged against the
config's tenantProfiles limits as the cluster would: a profile that breaks
them is not injected, with a warning.

Example:
  sidecar-injector inject -f deploy.yaml --namespace shop \\
    --namespace-label sidecar-injector.io/injection=enabled | kubectl diff -f -
  sidecar-injector inject -f deploy.yaml --namespace shop --profiles db-proxy.yaml --config cluster.yaml`;

class InjectError extends Error {}

function parseLabels(values: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--namespace-label: expected k=v, got "${kv}"`);
    labels[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return labels;
}

async function loadConfig(path: string | undefined): Promise<CompiledConfig> {
  const loaded = await loadConfigFile(path ?? BUILTIN_CONFIG_PATH);
  if (!loaded.ok) throw new InjectError(`invalid config:\n${loaded.errors.map((e) => `  ${e}`).join('\n')}`);
  return loaded.compiled;
}

function describeDoc(value: unknown): string {
  const v = value as { kind?: unknown; metadata?: { name?: unknown; generateName?: unknown } } | null;
  const name = v?.metadata?.name ?? v?.metadata?.generateName;
  return [typeof v?.kind === 'string' ? v.kind : undefined, typeof name === 'string' ? name : undefined].filter(Boolean).join(' ');
}

export async function runInject(argv: string[], io: CommandIO): Promise<number> {
  const { flags } = parseFlags(INJECT_FLAGS, argv, io.env);
  const file = flags.file as string | undefined;
  if (!file) throw new UsageError('inject needs -f FILE (or -f - for stdin)');
  const format = flags.output as string;
  if (format !== 'yaml' && format !== 'json') throw new UsageError(`-o: expected yaml or json, got "${format}"`);
  const namespaceLabels = parseLabels((flags['namespace-label'] as string[] | undefined) ?? []);
  const kubeVersion = kubeVersionFlag(flags['kube-version'] as string | undefined) ?? NEWEST;

  try {
    const config = await loadConfig(flags.config as string | undefined);
    let text: string;
    try {
      text = file === '-' ? await io.readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      throw new InjectError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const parsed = parseManifests(text);
    if (!parsed.ok) throw new InjectError(parsed.error);

    const profileFiles = (flags.profiles as string[] | undefined) ?? [];
    const tenants = await readProfileFiles(profileFiles, flags.namespace as string);
    if (!tenants.ok) throw new InjectError(`invalid --profiles:\n${tenants.errors.map((e) => `  ${e}`).join('\n')}`);
    const ctx = {
      namespace: flags.namespace as string,
      namespaceLabels,
      server: featuresOf(kubeVersion),
      tenantProfiles: profileFiles.length > 0 ? lookupOf(tenants.profiles) : undefined,
    };
    const out: OutputDoc[] = [];
    for (const doc of parsed.docs) {
      const label = `document ${doc.index}${describeDoc(doc.value) ? ` (${describeDoc(doc.value)})` : ''}`;
      const handle = (value: unknown, at: string): unknown => {
        const result: WorkloadResult = injectWorkload(value, ctx, config);
        if (result.kind === 'invalid') throw new InjectError(`${at}: ${result.error}`);
        if (result.kind === 'admitted') {
          for (const w of result.outcome.warnings) io.err(`Warning: ${at}: ${w}\n`);
          if (result.outcome.decision === 'denied') throw new InjectError(`${at}: would be denied: ${result.outcome.reason}`);
        }
        return result.object;
      };
      const value = doc.value as { kind?: unknown; items?: unknown } | null;
      let next: unknown;
      if (value && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
        const items = value.items.map((item, i) => handle(item, `${label} items[${i}]`));
        next = items.every((item, i) => item === (value.items as unknown[])[i]) ? value : { ...value, items };
      } else {
        next = handle(doc.value, label);
      }
      out.push(next === doc.value ? { value: next, source: doc.source } : { value: next });
    }
    io.out(formatManifests(out, format as OutputFormat));
    return 0;
  } catch (err) {
    if (err instanceof InjectError) {
      io.err(`sidecar-injector inject: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
