/**
 * SPEC 9 end to end on the real API server: the chart installed with
 * tenantProfiles on (the CRD from its crds/), two replicas serving, teams'
 * SidecarProfiles written with kubectl. Witnesses: the stored pods, the
 * profiles' stored status, the API server's answers and warnings.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { webhookCalls, type ApiServer } from './apiserver.js';
import { installed, NS, RELEASE, type Install, type Replica } from './install.js';
import { createPod, eventually, namespace, pod, type Pod } from './pods.js';
import { runCli } from '../helpers/process.js';

let kas: ApiServer;
let install: Install;
let replicas: Replica[] = [];

const SERVED = { 'sidecar-injector.io/tenant-profiles': 'enabled' };
const LIMITS = {
  enabled: true,
  namespaceSelector: { matchLabels: SERVED },
  allowedRegistries: ['registry.example.com/'],
  maxResources: { cpu: '500m', memory: '256Mi' },
};
const example = (name: string) => parse(readFileSync(new URL(`../../examples/tenant-profiles/${name}`, import.meta.url), 'utf8')) as Profile;
type Profile = { apiVersion: string; kind: string; metadata: { name: string; namespace: string; generation?: number }; spec: Record<string, unknown> };
type Condition = { type: string; status: string; reason: string; message: string; observedGeneration: number };

const PROFILES = (ns: string) => `/apis/sidecar-injector.io/v1alpha1/namespaces/${ns}/sidecarprofiles`;
function profile(ns: string, name: string, edit?: (p: Profile) => void): Profile {
  const p = example('db-proxy.yaml');
  p.metadata = { name, namespace: ns };
  edit?.(p);
  return p;
}
async function accepted(ns: string, name: string): Promise<Condition | undefined> {
  const a = await kas.call('GET', `${PROFILES(ns)}/${name}`);
  const conditions = ((a.body.status as { conditions?: Condition[] } | undefined)?.conditions ?? []) as Condition[];
  return conditions.find((c) => c.type === 'Accepted');
}
/** Waits until the profile's Accepted condition is the one expected for its current generation. */
async function condition(ns: string, name: string, status: 'True' | 'False', reason: string, ms = 10_000): Promise<Condition> {
  let seen: Condition | undefined;
  await eventually(async () => {
    const generation = ((await kas.must('GET', `${PROFILES(ns)}/${name}`)).metadata as { generation: number }).generation;
    seen = await accepted(ns, name);
    return seen?.status === status && seen.reason === reason && seen.observedGeneration === generation;
  }, `${ns}/${name} Accepted=${status} (${reason})`, ms);
  return seen!;
}
const asking = (ns: string, name: string, wish: string) => pod(ns, name, { annotations: { 'sidecar-injector.io/inject': wish } });
const names = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c) => c.name);
const statusOf = (p: Pod) => JSON.parse(p.metadata.annotations?.['sidecar-injector.io/status'] ?? 'null') as { profiles: string[]; generations?: Record<string, number> } | null;

/** Whether the API server would store the profile (server-side dry run: admission runs, nothing is stored). */
function dryRunAccepted(p: Profile): boolean {
  try {
    kas.kubectl(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(p));
    return true;
  } catch {
    return false;
  }
}

/** Changes the chart's ConfigMap and plays kubelet for every replica's config volume. */
async function setLimits(limits: Record<string, unknown>): Promise<void> {
  const files = await install.configFiles();
  const config = parse(files['config.yaml']!) as Record<string, unknown>;
  const next = { ...files, 'config.yaml': JSON.stringify({ ...config, tenantProfiles: limits }) };
  await kas.must('PATCH', `/api/v1/namespaces/${NS}/configmaps/${RELEASE}-config`, { data: next }, 'application/merge-patch+json');
  for (const r of replicas) r.config.update(next);
}

beforeAll(async () => {
  ({ kas, install, replicas } = await installed({ config: { tenantProfiles: LIMITS } }));
  await namespace(kas, 'shop', SERVED);
  await namespace(kas, 'billing', SERVED);
  await namespace(kas, 'unserved');
  kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('shop', 'db-proxy')));
}, 240_000);

afterAll(async () => {
  await install?.stop();
  await kas?.stop();
});

describe('a team writes a SidecarProfile and its pods ask for it by name', () => {
  it('the injector judges it Accepted, with the generation it judged', async () => {
    const c = await condition('shop', 'db-proxy', 'True', 'Accepted');
    expect(c.observedGeneration).toBe(1);
    expect(kas.kubectl(['get', 'scp', '-n', 'shop', 'db-proxy', '--no-headers'])).toMatch(/^db-proxy\s+True\s+db-proxy\s+/);
  });

  it('a pod of its namespace gets it, exactly as a config profile, recorded as namespace/name with its generation; one webhook call', async () => {
    const p = await createPod(kas, asking('shop', 'orders-1', 'db-proxy, log-shipper'));
    expect(names(p)).toEqual(['db-proxy', 'log-shipper', 'web']);
    const proxy = p.spec.initContainers!.find((c) => c.name === 'db-proxy')!;
    expect(proxy).toMatchObject({ image: 'registry.example.com/shop/pgbouncer:1.23.1', restartPolicy: 'Always' });
    // The ServiceAccount plugin's token mount, as for a config profile.
    expect(proxy.volumeMounts!.some((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount')).toBe(true);
    expect(statusOf(p)).toMatchObject({ profiles: ['shop/db-proxy', 'log-shipper'], generations: { 'shop/db-proxy': 1 } });
    await eventually(() => {
      const e = kas.podCreations().find((x) => x.objectRef?.name === 'orders-1');
      return e !== undefined && webhookCalls(e, RELEASE) === 1;
    }, 'one webhook call in the audit log');
  });

  it('a pod of another namespace asking for the same name never gets it', async () => {
    const a = await kas.call('POST', '/api/v1/namespaces/billing/pods', asking('billing', 'thief', 'db-proxy'));
    expect(a.status).toBe(201);
    expect(names(a.body as unknown as Pod)).toEqual(['web']);
    expect(a.warnings.join('\n')).toContain('unknown sidecar profile \\"db-proxy\\" ignored');
  });
});

describe('refused at write', () => {
  it('kubectl apply of a profile that breaks the rules fails at once, naming the field and the rule (the policy serve keeps from the limits)', async () => {
    await eventually(async () => (await kas.call('GET', `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/${RELEASE}-sidecarprofiles`)).status === 200, 'the SidecarProfile policy written by serve', 30_000);
    const refused = readFileSync(new URL('../../examples/tenant-profiles/refused.yaml', import.meta.url), 'utf8');
    let message = '';
    // The binding is stored a moment before the API server's informer has it: the first applies may pass.
    await eventually(async () => {
      try {
        kas.kubectl(['apply', '--dry-run=server', '-f', '-'], refused);
        return false;
      } catch (err) {
        message = String((err as { stderr?: string }).stderr ?? err);
        return true;
      }
    }, 'the refusal at write', 30_000);
    expect(message).toContain('spec.containers[0].image: image "docker.io/library/busybox:1.36" is not from an allowed registry (registry.example.com/) (rule allowedRegistries)');
    expect(message).toMatch(/other rules broken: .*privileged/);
    expect((await kas.call('GET', `${PROFILES('shop')}/debug-tools`)).status).toBe(404);
  }, 60_000);
});

describe('what is not accepted is never injected, and says why', () => {
  it('a namespace the namespaceSelector leaves out: NotServed, and the pod is warned', async () => {
    kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('unserved', 'db-proxy')));
    const c = await condition('unserved', 'db-proxy', 'False', 'NotServed');
    expect(c.message).toContain('not selected by tenantProfiles.namespaceSelector');
    const a = await kas.call('POST', '/api/v1/namespaces/unserved/pods', asking('unserved', 'p', 'db-proxy'));
    expect(names(a.body as unknown as Pod)).toEqual(['web']);
    expect(a.warnings.some((w) => w.startsWith('sidecar profile unserved/db-proxy not injected (NotServed)'))).toBe(true);
  });

  it('a name the config also has: the config profile is injected, the tenant one is Shadowed', async () => {
    kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('shop', 'log-shipper', (p) => ((p.spec.containers as { name: string }[])[0]!.name = 'imposter'))));
    await condition('shop', 'log-shipper', 'False', 'Shadowed');
    const p = await createPod(kas, asking('shop', 'shadowed', 'log-shipper'));
    expect(names(p)).toEqual(['log-shipper', 'web']);
    expect(statusOf(p)!.profiles).toEqual(['log-shipper']);
  });

  it('limits tightened while running: Accepted=False within 10 s, the next pod is admitted without it and warned, audit reports the earlier pods stale', async () => {
    const started = Date.now();
    await setLimits({ ...LIMITS, maxResources: { cpu: '100m', memory: '256Mi' } });
    const c = await condition('shop', 'db-proxy', 'False', 'OutsideLimits', 10_000);
    const took = Date.now() - started;
    process.stderr.write(`tenant-profiles.e2e: limits tightened → Accepted=False in ${took} ms\n`);
    expect(c.message).toContain('spec.containers[0].resources.limits.cpu: 200m is above the ceiling 100m (rule maxResources)');
    const a = await kas.call('POST', '/api/v1/namespaces/shop/pods', asking('shop', 'after-tightening', 'db-proxy'));
    expect(a.status).toBe(201);
    expect(names(a.body as unknown as Pod)).toEqual(['web']);
    expect(a.warnings.some((w) => w.startsWith('sidecar profile shop/db-proxy not injected (OutsideLimits)'))).toBe(true);

    const r = await runCli(['audit', '-n', 'shop', '-o', 'json', '--kubeconfig', kas.kubeconfig]);
    const body = JSON.parse(r.stdout) as { workloads: { name: string; state: string; reason: string }[] };
    expect(body.workloads.find((w) => w.name === 'orders-1')).toMatchObject({ state: 'stale' });

    // The write-time check follows the limits too: a new profile at 200m is refused now, accepted once they are restored.
    await eventually(() => !dryRunAccepted(profile('shop', 'new-at-200m')), 'the tightened limits refusing at write', 30_000);
    await setLimits(LIMITS);
    await condition('shop', 'db-proxy', 'True', 'Accepted');
    await eventually(() => dryRunAccepted(profile('shop', 'new-at-200m')), 'the restored limits accepting at write', 30_000);
  }, 90_000);
});

describe('audit follows the profiles', () => {
  it('a changed profile makes its pods stale; a deleted one orphaned', async () => {
    kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('billing', 'agent')));
    await condition('billing', 'agent', 'True', 'Accepted');
    await createPod(kas, asking('billing', 'with-agent', 'agent'));
    const audit = async () => {
      const r = await runCli(['audit', '-n', 'billing', '-o', 'json', '--kubeconfig', kas.kubeconfig]);
      return (JSON.parse(r.stdout) as { workloads: { name: string; state: string; reason: string }[] }).workloads.find((w) => w.name === 'with-agent');
    };
    expect(await audit()).toBeUndefined();
    kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('billing', 'agent', (p) => ((p.spec.containers as { image: string }[])[0]!.image = 'registry.example.com/shop/pgbouncer:1.23.2'))));
    await condition('billing', 'agent', 'True', 'Accepted');
    expect(await audit()).toMatchObject({ state: 'stale', reason: 'tenant profile billing/agent changed (generation 1, now 2)' });
    kas.kubectl(['delete', 'scp', '-n', 'billing', 'agent']);
    expect(await audit()).toMatchObject({ state: 'orphaned', reason: 'tenant profile billing/agent no longer exists' });
  }, 60_000);
});

describe('the watch across an API server restart', () => {
  it('a profile written after the restart is judged and served', async () => {
    await kas.restart();
    kas.kubectl(['apply', '-f', '-'], JSON.stringify(profile('shop', 'after-restart')));
    await condition('shop', 'after-restart', 'True', 'Accepted', 30_000);
    await eventually(async () => names(await createPod(kas, asking('shop', `after-restart-${Date.now()}`, 'after-restart'))).includes('db-proxy'), 'injection after the restart', 30_000);
  }, 120_000);
});
