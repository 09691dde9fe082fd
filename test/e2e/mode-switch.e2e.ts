/**
 * Switching a running install between modes on a real kube-apiserver 1.36,
 * under continuous pod creation, by the steps docs/policy-mode.md gives
 * ("Switching a running install"): webhook → policy (the policies applied
 * beside the webhook, seen injecting, then the webhook configuration removed
 * and the replicas stopped), and back (the webhook installed beside the
 * policies with failurePolicy Ignore while its replicas write their CA, seen
 * called, made Fail, then the policies removed). Every pod created in
 * the meantime is stored injected exactly once: none refused, none left
 * out, none injected twice.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { parsePrometheus, sampleValue } from '../helpers/ops.js';
import type { ApiServer } from './apiserver.js';
import { installed, RELEASE, SERVICE_HOST, type Install, type Replica } from './install.js';
import { eventually, namespace, pod, type Pod } from './pods.js';
import { describeOn, NEEDS } from './server.js';

const { describe, applies } = describeOn(NEEDS.mutatingAdmissionPolicy, import.meta.url);

const NS = 'shop';
const MWC = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}`;
const PLURAL: Record<string, string> = {
  MutatingAdmissionPolicy: 'mutatingadmissionpolicies',
  MutatingAdmissionPolicyBinding: 'mutatingadmissionpolicybindings',
  ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
};

let kas: ApiServer;
let install: Install;
let replicas: Replica[];

beforeAll(async () => {
  if (!applies) return;
  ({ kas, install, replicas } = await installed());
  await namespace(kas, NS);
}, 240_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The live replicas' admissions by decision, summed. */
async function webhookDecisions(decision: string): Promise<number> {
  let sum = 0;
  for (const r of replicas.filter((x) => x.proc.child.exitCode === null && x.proc.child.signalCode === null)) {
    const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
    sum += sampleValue(parsePrometheus(text), 'sidecar_injector_admissions_total', { decision }) ?? 0;
  }
  return sum;
}

interface Load {
  /** Pods created so far (to mark a moment). */
  count(): number;
  stop(): Promise<{ created: number; refused: string[]; notInjected: string[]; twice: string[] }>;
}

/** Pods that ask, created back to back until stopped. */
function creating(tag: string): Load {
  const stored: Pod[] = [];
  const refused: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i += 1) {
      const a = await kas.call('POST', `/api/v1/namespaces/${NS}/pods`, pod(NS, `${tag}-${i}`, { annotations: { 'sidecar-injector.io/inject': 'true' } }));
      if (a.status === 201) stored.push(a.body as unknown as Pod);
      else refused.push(`${tag}-${i}: ${a.status} ${String(a.body.message)}`);
    }
  })();
  return {
    count: () => stored.length + refused.length,
    async stop() {
      running = false;
      await loop;
      const count = (p: Pod) => [(p.spec.initContainers ?? []).filter((c) => c.name === 'log-shipper').length, (p.spec.volumes ?? []).filter((v) => v.name === 'app-logs').length];
      return {
        created: stored.length,
        refused,
        notInjected: stored.filter((p) => count(p).every((n) => n === 0) || !p.metadata.annotations?.['sidecar-injector.io/status']).map((p) => p.metadata.name!),
        twice: stored.filter((p) => count(p).some((n) => n > 1)).map((p) => p.metadata.name!),
      };
    },
  };
}

/**
 * Pods the webhook found injected already (by the policy): its log's admissions, not the decision metric,
 * which also counts the caBundle probe's Lease request (`unchanged`: not a Pod CREATE; ca-bundle.ts).
 */
function podsFoundInjected(): number {
  return replicas
    .flatMap((r) => r.proc.lines)
    .filter((l) => l.msg === 'admission' && l.decision === 'unchanged' && String(l.reason).startsWith('already injected')).length;
}

/** Waits until the API server has stopped calling the webhook (its configuration gone from the API server's cache). */
async function webhookQuiet(): Promise<void> {
  await eventually(async () => {
    const before = (await webhookDecisions('injected')) + (await webhookDecisions('unchanged'));
    await sleep(1500);
    return (await webhookDecisions('injected')) + (await webhookDecisions('unchanged')) === before;
  }, 'the webhook no longer called', 20_000);
}

describe('switching modes under continuous pod creation (docs/policy-mode.md)', () => {
  let policyObjects: { kind: string; name: string }[] = [];

  it('webhook → policy: apply the policies beside the webhook, see them inject first, remove the webhook configuration, stop the replicas', async () => {
    const load = creating('to-policy');
    await eventually(async () => (await webhookDecisions('injected')) > 0, 'the webhook injecting', 15_000);
    policyObjects = await install.applyPolicy();
    // In force once the webhook sees pods the policy injected already (it then answers "unchanged").
    await eventually(() => podsFoundInjected() > 0, 'the policy injecting before the webhook', 30_000);
    await kas.must('DELETE', MWC);
    await webhookQuiet();
    for (const r of replicas) r.proc.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.proc.exited));
    const switched = load.count();
    await eventually(() => load.count() > switched + 20, 'pods created with the policies alone', 30_000);
    const s = await load.stop();
    expect(s).toMatchObject({ refused: [], notInjected: [], twice: [] });
    expect(s.created).toBeGreaterThan(40);
  }, 180_000);

  it('policy → webhook: install the webhook beside the policies (failurePolicy Ignore until it is ready), see it called, make it Fail, remove the policies', async () => {
    const load = creating('to-webhook');
    // As the chart renders it with webhook.failurePolicy=Ignore; the url stands in for the Service, which exists at once.
    const mwc = structuredClone(install.doc('MutatingWebhookConfiguration')) as unknown as { webhooks: { failurePolicy: string; clientConfig: Record<string, unknown> }[] };
    for (const w of mwc.webhooks) {
      w.failurePolicy = 'Ignore';
      w.clientConfig = { url: `https://${SERVICE_HOST}:${install.proxyPort}/mutate` };
    }
    kas.kubectl(['apply', '--server-side', '--field-manager=helm', '-f', '-'], JSON.stringify(mwc));
    replicas = [await install.startReplica(), await install.startReplica()];
    await Promise.all(replicas.map((r) => install.ready(r)));
    // Called, and finding every pod injected by the policy already.
    await eventually(() => podsFoundInjected() > 0, 'the webhook called', 30_000);
    expect(await webhookDecisions('injected')).toBe(0);
    // helm upgrade back to the default failurePolicy.
    await kas.must('PATCH', MWC, mwc.webhooks.map((_, i) => ({ op: 'replace', path: `/webhooks/${i}/failurePolicy`, value: 'Fail' })), 'application/json-patch+json');
    // Bindings first, then policies: a policy without its binding is not applied.
    for (const o of [...policyObjects].sort((a, b) => Number(b.kind.endsWith('Binding')) - Number(a.kind.endsWith('Binding')))) {
      await kas.must('DELETE', `/apis/admissionregistration.k8s.io/v1/${PLURAL[o.kind]}/${o.name}`);
    }
    await eventually(async () => (await webhookDecisions('injected')) > 0, 'the webhook injecting again', 30_000);
    const switched = load.count();
    await eventually(() => load.count() > switched + 20, 'pods created with the webhook alone', 30_000);
    const s = await load.stop();
    expect(s).toMatchObject({ refused: [], notInjected: [], twice: [] });
    expect(s.created).toBeGreaterThan(40);
  }, 240_000);
});
