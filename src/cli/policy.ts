/**
 * `policy`: the config compiled into Kubernetes admission policies (SPEC 2,
 * 7 Policy mode). Prints the objects, or one line per feature it cannot
 * compile, with its config path, and exits 1.
 */
import { stringify } from 'yaml';
import { BUILTIN_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { compilePolicy } from '../core/policy.js';
import { kubeVersionFlag, parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const POLICY_FLAGS: FlagSpecs = {
  config: { type: 'string', env: true, help: 'profiles config file (the built-in example when absent)' },
  name: { type: 'string', default: 'sidecar-injector', help: 'name of the policy objects (a second policy is NAME-namespaces)' },
  'kube-version': { type: 'string', default: '1.36', help: 'the API server version X.Y: v1 from 1.36, v1beta1 on 1.34-1.35, an error before' },
  output: { type: 'string', short: 'o', default: 'yaml', help: 'yaml or json (a List)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const POLICY_USAGE = `Usage: sidecar-injector policy [--config FILE] [--name NAME] [--kube-version X.Y] [-o yaml|json]

Prints the config compiled into MutatingAdmissionPolicies and their bindings,
which the API server applies in-process: the same pods as the webhook, with
nothing of ours in the admission path. A config that uses what the policy
cannot do yet is refused: one line per feature, with its config path; exit 1.

Example:
  sidecar-injector policy --config profiles.yaml | kubectl apply -f -`;

const ANNOTATIONS_LIMIT = 256 * 1024;
/** The annotation's key, kubectl.kubernetes.io/last-applied-configuration, and what kubectl adds to the object's JSON (a newline, `"annotations":{}`). */
const LAST_APPLIED_OVERHEAD = 48 + 64;

export async function runPolicy(argv: string[], io: CommandIO): Promise<number> {
  const { flags } = parseFlags(POLICY_FLAGS, argv, io.env);
  const format = flags.output as string;
  if (format !== 'yaml' && format !== 'json') throw new UsageError(`-o: expected yaml or json, got "${format}"`);
  const version = kubeVersionFlag(flags['kube-version'] as string);
  if (!version) throw new UsageError('--kube-version: expected X.Y');
  const file = (flags.config as string | undefined) ?? BUILTIN_CONFIG_PATH;
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    for (const e of loaded.errors) io.err(`${e}\n`);
    return 1;
  }
  const result = compilePolicy(loaded.compiled, flags.name as string, version);
  if (!result.ok) {
    for (const p of result.problems) io.err(`sidecar-injector policy: ${p}\n`);
    return 1;
  }
  // `kubectl apply` (client-side) keeps the whole object in its last-applied-configuration annotation, and
  // the API server refuses annotations over 256 KiB in all (k8s.io/apimachinery pkg/api/validation/objectmeta.go,
  // TotalAnnotationSizeLimitB): seen from 77 profiles on 1.36.3 (test/e2e/policy-scale.e2e.ts). Server-side apply keeps none.
  for (const o of result.objects) {
    // As kubectl writes it: Go's encoding/json escapes &, <, >, U+2028 and U+2029 as \u00XX (CEL's && among them).
    const bytes = Buffer.byteLength(JSON.stringify(o).replace(/[&<>\u2028\u2029]/g, '\\u0000'));
    if (bytes + LAST_APPLIED_OVERHEAD > ANNOTATIONS_LIMIT)
      io.err(`sidecar-injector policy: warning: ${o.kind} ${o.metadata.name} is ${bytes} bytes as kubectl writes it: plain \`kubectl apply\` copies it into an annotation, over the API server's ${ANNOTATIONS_LIMIT}-byte limit on annotations; apply with \`kubectl apply --server-side\`\n`);
  }
  if (format === 'json') io.out(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: result.objects }, null, 2)}\n`);
  else io.out(result.objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join(''));
  return 0;
}
