/**
 * Kubernetes' own admission code for policy mode: the Go harness in
 * test/policy-eval (k8s.io/apiserver's MutatingAdmissionPolicy and
 * ValidatingAdmissionPolicy plugins, at the versions its go.mod pins), built
 * once per machine by scripts/tools.mjs from the Go module proxy. There is no
 * other engine to fall back on: without Go the tests that use it fail, saying why.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';

const TOOLS = fileURLToPath(new URL('../../scripts/tools.mjs', import.meta.url));

export interface EvalCase {
  namespace: string;
  pod: V1Pod;
  /** The webhook's JSON patch for the same pod ([] when it allowed without one); left out when it refused the pod. */
  webhookPatch?: unknown[];
}

export interface EvalResult {
  /** Mutations the MutatingAdmissionPolicy plugin ran for the pod (reinvocations included), by its own counter. */
  policyMutations: number;
  /** The pod as the API server would store it through the policies (before its defaulting), unless refused. */
  pod?: V1Pod;
  error?: string;
  warnings: string[];
  /** The pod with the webhook's patch applied by the API server's JSON patch library, through the same types. */
  webhook?: V1Pod;
  webhookError?: string;
}

let binary: string | undefined;
/** The harness's binary (built the first time on a machine: minutes). */
export function policyEvalBinary(): string {
  if (binary) return binary;
  const r = spawnSync(process.execPath, [TOOLS, 'policy-eval'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
  if (r.status !== 0) throw new Error(`building test/policy-eval failed (node ${TOOLS} policy-eval):\n${r.stderr}${r.error ? String(r.error) : ''}`);
  binary = r.stdout.trim().split('\n').pop()!.replace(/^policy-eval=/, '');
  return binary;
}

/** A namespace as the API server stores it (it adds the name label itself). */
export function namespaceObject(name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } } };
}

/** One harness run: the policy objects in force, the namespaces, the pods created. */
export async function evaluate(input: { objects: unknown[]; namespaces: unknown[]; cases: EvalCase[] }): Promise<EvalResult[]> {
  return ((await runHarness([], input)) as { results: EvalResult[] }).results;
}

export interface ObjectCase {
  operation: 'CREATE' | 'UPDATE';
  namespace: string;
  object: unknown;
  /** UPDATE: the object stored before. */
  oldObject?: unknown;
}

export interface PolicyCost {
  /** Validations and their messages, charged against one budget of the plugin's (celconfig.RuntimeCELCostBudget, 10,000,000). */
  total: number;
  /** The largest cost of one variable with what it reads (each evaluation is limited to celconfig.PerCallLimit, 1,000,000). */
  maxVariable: number;
  variable: string;
  /** Each variable's cost, with what it reads. */
  variables: Record<string, number>;
  /** An evaluation that failed (a limit exceeded), and the costs up to it. */
  error?: string;
}

export interface ObjectResult {
  allowed: boolean;
  /** The refusal as the API server answers it: Status message, code and reason. */
  message?: string;
  code?: number;
  reason?: string;
  warnings: string[];
  /** Per ValidatingAdmissionPolicy whose matchConditions hold. */
  cost?: Record<string, PolicyCost>;
}

/** The kind and resource the objects are of (a custom resource's group, version, plural and kind). */
export interface ResourceRef {
  group: string;
  version: string;
  resource: string;
  kind: string;
}

/**
 * ValidatingAdmissionPolicies on objects of any kind, through k8s.io/apiserver's validating policy plugin: each
 * object created or updated as the API server holds it (unstructured). With `compileAs` ("1.29": what a 1.30
 * server compiles a new policy's expressions with), every expression is also compiled as kube-apiserver does
 * when it is sent the policy, and the errors are listed.
 */
export async function evaluateObjects(input: { objects: unknown[]; namespaces: unknown[]; resource: ResourceRef; cases: ObjectCase[]; compileAs?: string }): Promise<{ results: ObjectResult[]; compileErrors?: string[] }> {
  return (await runHarness(['-objects'], input)) as { results: ObjectResult[]; compileErrors?: string[] };
}

/** The pods as the API server encodes them in an AdmissionReview: through its Go types (empty lists, unknown fields gone). */
export async function asEncoded(pods: V1Pod[]): Promise<V1Pod[]> {
  return ((await runHarness(['-normalize'], { pods })) as { pods: V1Pod[] }).pods;
}

function runHarness(args: string[], input: unknown): Promise<unknown> {
  const child = spawn(policyEvalBinary(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(JSON.stringify(input));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      // klog's informer lines (I/W1130 ...) are noise next to the harness's own error.
      if (code !== 0) reject(new Error(`policy-eval exited ${code}: ${Buffer.concat(err).toString('utf8').split('\n').filter((l) => !/^[IW]\d{4} /.test(l)).join('\n')}`));
      else resolve(JSON.parse(Buffer.concat(out).toString('utf8')));
    });
  });
}
