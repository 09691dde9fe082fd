/**
 * `serve --policy NAME`: keeps the admission policies compiled from the config
 * in force on the API server (SPEC 7, Policy mode), at start and after each
 * reload, in the background (SyncLoop: retried with backoff).
 *
 * A policy is proven before it takes effect: the API server accepts a policy
 * whose values it only checks at admission, and then fails every pod the
 * policy matches. So a new policy is first applied as a candidate bound only
 * to pods labelled `sidecar-injector.io/canary=<fingerprint>` in the
 * injector's namespace (the real bindings leave such pods out); server-side
 * dry-run pods, one per profile and one asking for the defaults, are created
 * through it and each compared with what the core (the webhook's own code)
 * gives for the same pod; only then are the real objects applied. Otherwise
 * the last good policies stay in force, and the failure is logged and counted.
 * The candidate is removed either way. Writes are server-side applies with
 * our own field manager; the objects carry the fingerprint of what was
 * compiled, so an unchanged config writes nothing.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../core/admit.js';
import type { CompiledConfig } from '../core/config.js';
import type { KubeVersion } from '../core/kube-version.js';
import { compilePolicy, type PolicyObject } from '../core/policy.js';
import { KubeError, type KubeClient } from './client.js';
import { SyncLoop } from './sync-loop.js';

export type PolicyWriteResult = 'promoted' | 'unchanged' | 'rejected' | 'failure';

export const CANARY_LABEL = 'sidecar-injector.io/canary';
/** The annotation with the fingerprint of what was compiled, on every policy object we write. */
export const FINGERPRINT = 'sidecar-injector.io/compiled';
const FIELD_MANAGER = 'sidecar-injector';

const PLURALS: Record<string, string> = {
  MutatingAdmissionPolicy: 'mutatingadmissionpolicies',
  MutatingAdmissionPolicyBinding: 'mutatingadmissionpolicybindings',
  ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
};
const plural = (kind: string) => PLURALS[kind] ?? `${kind.toLowerCase()}s`;
/** The REST path of a (cluster-scoped) policy object. */
export const pathOf = (o: { apiVersion: string; kind: string; metadata: { name: string } }) => `/apis/${o.apiVersion}/${plural(o.kind)}/${encodeURIComponent(o.metadata.name)}`;

/** The fingerprint of what was compiled: the same objects, the same 16 hex digits. Pure. */
export function fingerprintOf(objects: readonly PolicyObject[]): string {
  return createHash('sha256').update(JSON.stringify(objects)).digest('hex').slice(0, 16);
}

/** Server-side apply of a whole object with our field manager (force: the objects are ours). */
export function applyObject(client: KubeClient, o: PolicyObject): Promise<unknown> {
  return client.request('PATCH', `${pathOf(o)}?fieldManager=${FIELD_MANAGER}&force=true`, { body: o, contentType: 'application/apply-patch+yaml', timeoutMs: 10_000 });
}

/** Deletes the object; true when it was there. */
export async function removeObject(client: KubeClient, o: PolicyObject): Promise<boolean> {
  try {
    await client.request('DELETE', pathOf(o), { timeoutMs: 10_000 });
    return true;
  } catch (err) {
    if (err instanceof KubeError && err.status === 404) return false;
    throw err;
  }
}

/** The fingerprint on the live object; undefined when it is missing or carries none. */
export async function liveFingerprint(client: KubeClient, o: PolicyObject): Promise<string | undefined> {
  try {
    const { body } = await client.request('GET', pathOf(o), { timeoutMs: 10_000 });
    return (body as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations?.[FINGERPRINT];
  } catch (err) {
    if (err instanceof KubeError && err.status === 404) return undefined;
    throw err;
  }
}

/** The objects as serve writes them: fingerprinted, the real bindings leaving canary pods out. Pure. */
export function managedObjects(objects: PolicyObject[]): { fingerprint: string; objects: PolicyObject[] } {
  const fingerprint = fingerprintOf(objects);
  const out = objects.map((o) => {
    const copy = structuredClone(o) as PolicyObject & { metadata: { annotations?: Record<string, string> } };
    copy.metadata.annotations = { [FINGERPRINT]: fingerprint };
    const match = (copy.spec as { matchResources?: { objectSelector?: { matchExpressions?: unknown[] } } }).matchResources;
    if (match) {
      match.objectSelector ??= {};
      match.objectSelector.matchExpressions = [...(match.objectSelector.matchExpressions ?? []), { key: CANARY_LABEL, operator: 'DoesNotExist' }];
    }
    return copy;
  });
  return { fingerprint, objects: out };
}

/** The optional objects a config may or may not compile to (NAME-deny), as they would be written: those absent from `objects`. Pure. */
export function leftovers(name: string, objects: readonly PolicyObject[]): PolicyObject[] {
  const optional: PolicyObject[] = ['ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicy'].map((kind) => ({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name: `${name}-deny`, labels: {} },
    spec: {},
  }));
  return optional.filter((o) => !objects.some((x) => x.kind === o.kind && x.metadata.name === o.metadata.name));
}

/**
 * The candidate: the policy for enabled namespaces (`<name>-namespaces`: no condition on what the pod asks, only
 * the not-injected guard, so every probe reaches the mutation), bound to canary pods only. Pure.
 */
export function candidateObjects(objects: PolicyObject[], name: string, namespace: string, fingerprint: string): PolicyObject[] {
  const policies = objects.filter((o) => o.kind === 'MutatingAdmissionPolicy');
  const policy = policies.find((o) => o.metadata.name === `${name}-namespaces`) ?? policies[0];
  if (!policy) throw new Error('no MutatingAdmissionPolicy to try');
  const candidate = `${name}-candidate`;
  return [
    { ...structuredClone(policy), metadata: { ...policy.metadata, name: candidate } },
    {
      apiVersion: policy.apiVersion,
      kind: 'MutatingAdmissionPolicyBinding',
      metadata: { name: candidate, labels: policy.metadata.labels },
      spec: {
        policyName: candidate,
        matchResources: {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
          objectSelector: { matchLabels: { [CANARY_LABEL]: fingerprint } },
        },
      },
    },
  ];
}

/** One probe pod per profile, and one asking for the defaults. Pure. */
export function probePods(compiled: CompiledConfig, namespace: string, fingerprint: string): V1Pod[] {
  const wishes = ['true', ...Object.keys(compiled.config.profiles)];
  return wishes.map((wish) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'sidecar-injector-canary-', namespace, labels: { [CANARY_LABEL]: fingerprint }, annotations: { [compiled.keys.inject]: wish } },
    spec: { containers: [{ name: 'canary', image: 'registry.invalid/sidecar-injector/canary:1' }] },
  }));
}

/** What the API server stored (dry run) against what the core makes of the same pod: the status annotation and the injected images. Pure. */
export function probeMismatch(expected: V1Pod, stored: V1Pod, statusKey: string): string | undefined {
  const want = expected.metadata?.annotations?.[statusKey];
  const got = stored.metadata?.annotations?.[statusKey];
  if (want !== got) return `status annotation ${got ?? '(none)'}, expected ${want ?? '(none)'}`;
  const images = (p: V1Pod) => [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map((c) => `${c.name}=${c.image ?? ''}`).sort();
  if (JSON.stringify(images(expected)) !== JSON.stringify(images(stored))) return `containers ${images(stored).join(',')}, expected ${images(expected).join(',')}`;
  return undefined;
}

export interface PolicyWriterOptions {
  client: KubeClient;
  name: string;
  /** The injector's namespace: where the canary pods are tried (dry run). */
  namespace: string;
  kubeVersion: KubeVersion;
  logger: Logger;
  config(): CompiledConfig;
  onResult(result: PolicyWriteResult): void;
  /** How long a candidate may take to be in force and pass (default 30 s). */
  proveWithinMs?: number;
  backoffInitialMs?: number;
}

export class PolicyWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  /** The config whose policy is in force (promoted, or found in place); undefined until then. */
  private promoted: CompiledConfig | undefined;

  constructor(private readonly opts: PolicyWriterOptions) {
    this.log = opts.logger.child({ policy: opts.name });
    this.loop = new SyncLoop(async () => opts.onResult(await this.writeOnce()), {
      logger: this.log,
      what: 'policy',
      backoffInitialMs: opts.backoffInitialMs,
      onFailure: () => opts.onResult('failure'),
    });
  }

  sync(): void {
    this.loop.sync();
  }

  stop(): void {
    this.loop.stop();
  }

  /** The config the policies in force were compiled from: what the API server injects with now. */
  inForce(): CompiledConfig | undefined {
    return this.promoted;
  }

  private apply(o: PolicyObject): Promise<unknown> {
    return applyObject(this.opts.client, o);
  }

  private async remove(o: PolicyObject): Promise<void> {
    await removeObject(this.opts.client, o);
  }

  /** The fingerprint on the live policy, if any. */
  private live(o: PolicyObject): Promise<string | undefined> {
    return liveFingerprint(this.opts.client, o);
  }

  private async writeOnce(): Promise<PolicyWriteResult> {
    const compiled = this.opts.config();
    const result = compilePolicy(compiled, this.opts.name, this.opts.kubeVersion);
    if (!result.ok) {
      this.log.error({ problems: result.problems, revision: compiled.revision }, 'the config cannot be compiled into a policy; the policies in force stay');
      return 'rejected';
    }
    const { fingerprint, objects } = managedObjects(result.objects);
    const policies = objects.filter((o) => o.kind === 'MutatingAdmissionPolicy');
    if ((await Promise.all(policies.map((p) => this.live(p)))).every((f) => f === fingerprint)) {
      this.promoted = compiled;
      return 'unchanged';
    }

    const candidate = candidateObjects(objects, this.opts.name, this.opts.namespace, fingerprint);
    let problem: string | undefined;
    try {
      for (const o of candidate) await this.apply(o);
      problem = await this.prove(compiled, fingerprint);
    } catch (err) {
      if (!(err instanceof KubeError) || err.status >= 500) throw err;
      problem = `the API server refused the candidate: ${err.message}`;
    } finally {
      for (const o of [...candidate].reverse()) await this.remove(o).catch(() => undefined);
    }
    if (problem) {
      this.log.error({ problem, revision: compiled.revision, fingerprint }, 'the new policy failed on canary pods; the policies in force stay');
      return 'rejected';
    }
    // Bindings after their policies, so a binding never names a policy that is not there.
    for (const o of [...objects.filter((x) => !x.kind.endsWith('Binding')), ...objects.filter((x) => x.kind.endsWith('Binding'))]) await this.apply(o);
    // What the config no longer asks for goes (the refusal of onConflict: deny after a change to skip), bindings first.
    for (const o of leftovers(this.opts.name, objects)) await this.remove(o);
    this.promoted = compiled;
    this.log.info({ revision: compiled.revision, fingerprint, objects: objects.map((o) => o.metadata.name) }, 'policy proven on canary pods and in force');
    return 'promoted';
  }

  /** Dry-run pods through the candidate, each compared with the core's pod; undefined when all agree. */
  private async prove(compiled: CompiledConfig, fingerprint: string): Promise<string | undefined> {
    const { client, namespace } = this.opts;
    const { body: ns } = await client.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}`, { timeoutMs: 10_000 });
    const namespaceLabels = (ns as { metadata?: { labels?: Record<string, string> } }).metadata?.labels;
    const deadline = Date.now() + (this.opts.proveWithinMs ?? 30_000);
    for (const probe of probePods(compiled, namespace, fingerprint)) {
      const outcome = admitPod(probe, { namespace, namespaceLabels, server: { nativeSidecars: true } }, compiled);
      const expected = outcome.decision === 'injected' ? outcome.pod : probe;
      const wish = probe.metadata?.annotations?.[compiled.keys.inject];
      for (;;) {
        let mismatch: string;
        try {
          const { body } = await client.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?dryRun=All`, { body: probe, timeoutMs: 10_000 });
          const found = probeMismatch(expected, body as V1Pod, compiled.keys.status);
          if (found === undefined) break;
          mismatch = found;
        } catch (err) {
          if (!(err instanceof KubeError)) throw err;
          mismatch = `creating it failed: ${err.message}`;
        }
        // A new policy takes the API server a moment to load: until the deadline, a miss may be the old state.
        if (Date.now() > deadline) return `canary pod asking for ${wish}: ${mismatch}`;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    return undefined;
  }
}
