/**
 * The SidecarProfile API on a real kube-apiserver (SPEC 9, issue 30): the
 * CRD created from the chart's crds/ as `helm install` creates it, then the
 * chart's RBAC applied (install.ts), with kube-controller-manager running its
 * clusterrole-aggregation controller alone, so that the built-in admin, edit
 * and view roles gain the chart's aggregated rules as in a real cluster.
 *
 * Witnesses are the API server's: the CRD's conditions, what it stores
 * (generation, status), its answers to kubectl (explain, the printer
 * columns) and its authorizer's answers to real requests made as the users
 * (kubectl --as, impersonation by the admin) and as the injector's
 * ServiceAccount (a TokenRequest token, the chart's ClusterRole bound to it).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ApiServer } from './apiserver.js';
import { Install, NS, RELEASE } from './install.js';
import { eventually, namespace } from './pods.js';
import { processesNaming } from './processes.js';

const CRD_FILE = new URL('../../charts/sidecar-injector/crds/sidecarprofiles.yaml', import.meta.url);
const CRD = 'sidecarprofiles.sidecar-injector.io';
const API = '/apis/sidecar-injector.io/v1alpha1';
const TENANT_POLICY = `${RELEASE}-sidecarprofiles`;

let kas: ApiServer;
let install: Install;
/** The injector's ServiceAccount kubeconfig (a TokenRequest token). */
let injector = '';
const dir = mkdtempSync(join(tmpdir(), 'e2e-tenant-api-'));

interface Ran {
  ok: boolean;
  out: string;
}

/** kubectl with the admin's kubeconfig (or KUBECONFIG), AS flags first; never throws. */
function kubectl(args: string[], opts: { as?: string[]; kubeconfig?: string; input?: string } = {}): Ran {
  const r = spawnSync('kubectl', ['--kubeconfig', opts.kubeconfig ?? kas.kubeconfig, ...(opts.as ?? []), ...args], { input: opts.input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const forbidden = (r: Ran) => !r.ok && /forbidden/i.test(r.out);

function profile(ns: string, name: string, container = name): Record<string, unknown> {
  return {
    apiVersion: 'sidecar-injector.io/v1alpha1',
    kind: 'SidecarProfile',
    metadata: { name, namespace: ns },
    spec: {
      nativeSidecar: 'auto',
      containers: [
        {
          name: container,
          image: 'registry.example.com/team/db-proxy:1.4',
          ports: [{ containerPort: 5432 }],
          resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: 1, memory: '256Mi' } },
          readinessProbe: { tcpSocket: { port: 5432 } },
          securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
        },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
      appVolumeMounts: [{ name: 'scratch', mountPath: '/var/run/db-proxy' }],
      overrides: { resources: true, imageRegistries: ['registry.example.com/team/'] },
    },
  };
}

function accepted(generation: number, status = 'True'): Record<string, unknown> {
  return {
    conditions: [
      { type: 'Accepted', status, reason: status === 'True' ? 'Accepted' : 'OutsideLimits', message: 'judged by the test', observedGeneration: generation, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
    ],
  };
}

/** One request with the injector's ServiceAccount token (from its kubeconfig); JSON in and out. */
function asInjector(method: string, path: string, body: unknown, contentType = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> {
  const token = (JSON.parse(readFileSync(injector, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;
  return new Promise((resolve, reject) => {
    const req = request(`${kas.url}${path}`, { method, ca: kas.ca, headers: { authorization: `Bearer ${token}`, 'content-type': contentType, accept: 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** The rows of `kubectl get` as words (the header first). */
const table = (text: string) => text.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));

beforeAll(async () => {
  kas = await ApiServer.start({ controllers: ['clusterrole-aggregation'] });
  // As `helm install` does with crds/: created before the templates, never templated.
  kas.kubectl(['create', '-f', '-'], readFileSync(CRD_FILE, 'utf8'));
  kas.kubectl(['wait', '--for=condition=Established', `crd/${CRD}`, '--timeout=60s']);
  await namespace(kas, 'team-a');
  await namespace(kas, 'team-b');
}, 180_000);

afterAll(async () => {
  await install?.stop();
  await kas?.stop();
});

describe('the SidecarProfile CRD from the chart', () => {
  it('is accepted as structural and established; its short name and category are no built-in resource\'s', async () => {
    const crd = await kas.must('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD}`);
    const conditions = (crd.status as { conditions: { type: string; status: string }[] }).conditions;
    expect(Object.fromEntries(conditions.map((c) => [c.type, c.status]))).toEqual({ NamesAccepted: 'True', Established: 'True' });
    // Every resource the server serves (discovery), with its short names and categories.
    const lists = [await kas.must('GET', '/api/v1')];
    for (const g of (await kas.must('GET', '/apis')).groups as { preferredVersion: { groupVersion: string } }[]) lists.push(await kas.must('GET', `/apis/${g.preferredVersion.groupVersion}`));
    const resources = lists.flatMap((l) => (l.resources as { name: string; shortNames?: string[]; categories?: string[] }[]).map((r) => ({ ...r, group: String(l.groupVersion) })));
    expect(resources.filter((r) => r.shortNames?.includes('scp')).map((r) => r.name)).toEqual(['sidecarprofiles']);
    expect(resources.filter((r) => r.categories?.includes('sidecar-injector')).map((r) => r.name)).toEqual(['sidecarprofiles']);
    expect(resources.length).toBeGreaterThan(40);
  });

  it('kubectl explain sidecarprofile.spec.containers explains the core/v1 Container fields', async () => {
    let explained: Ran = { ok: false, out: '' };
    // The server publishes a new CRD's OpenAPI shortly after it is established.
    await eventually(() => (explained = kubectl(['explain', 'sidecarprofile.spec.containers'])).ok, 'kubectl explain sidecarprofile.spec.containers', 30_000);
    expect(explained.out).toContain('FIELD: containers <[]Object>');
    expect(explained.out).toContain('Sidecar containers (core/v1 Container)');
    expect(explained.out).toMatch(/image\t<string>\n\s+Container image name/);
    expect(explained.out).toMatch(/name\t<string> -required-/);
    // An int-or-string, explained by core/v1's words.
    expect(kubectl(['explain', 'scp.spec.containers.livenessProbe.httpGet.port'])).toMatchObject({ ok: true, out: expect.stringContaining('an int32 or a string') });
    expect(kubectl(['explain', 'sidecarprofile.status.conditions']).out).toMatch(/reason\t<string> -required-\n\s+Why, in one CamelCase word/);
  });

  it('the schema refuses at write what is not a profile: a duplicate container name, a port as a string, an unknown field (kubectl\'s strict field validation)', () => {
    const dup = profile('team-a', 'dup') as { spec: { containers: Record<string, unknown>[] } };
    dup.spec.containers.push({ ...dup.spec.containers[0]!, image: 'registry.example.com/team/other:1' });
    expect(kubectl(['create', '-f', '-'], { input: JSON.stringify(dup) }).out).toContain('Duplicate value: {"name":"dup"}');
    const wrong = profile('team-a', 'wrong') as { spec: { containers: { ports: unknown[] }[] } };
    wrong.spec.containers[0]!.ports = [{ containerPort: '5432' }];
    expect(kubectl(['create', '-f', '-'], { input: JSON.stringify(wrong) }).out).toMatch(/containerPort: Invalid value: "string": .*must be of type integer/);
    const typo = profile('team-a', 'typo') as { spec: { appVolumeMounts: Record<string, unknown>[] } };
    typo.spec.appVolumeMounts[0]!.readonly = true;
    expect(kubectl(['create', '-f', '-'], { input: JSON.stringify(typo) }).out).toContain('unknown field "spec.appVolumeMounts[0].readonly"');
  });

  it('prints the Accepted condition, the first container and the age; the status subresource: status writes keep the generation, spec writes bump it', async () => {
    kas.kubectl(['create', '-f', '-'], JSON.stringify(profile('team-a', 'db-proxy')));
    const path = `${API}/namespaces/team-a/sidecarprofiles/db-proxy`;
    const created = await kas.must('GET', path);
    expect((created.metadata as { generation: number }).generation).toBe(1);
    expect(table(kubectl(['get', 'sidecarprofiles', '-n', 'team-a']).out)[0]).toEqual(['NAME', 'ACCEPTED', 'CONTAINERS', 'AGE']);

    // The injector's write: through /status, which keeps the generation.
    const withStatus = await kas.must('PUT', `${path}/status`, { ...created, status: accepted(1) });
    expect((withStatus.metadata as { generation: number }).generation).toBe(1);
    expect((withStatus.status as { conditions: { observedGeneration: number }[] }).conditions[0]!.observedGeneration).toBe(1);
    const [header, row] = table(kubectl(['get', 'scp', '-n', 'team-a', '-o', 'wide']).out);
    expect(header).toEqual(['NAME', 'ACCEPTED', 'REASON', 'CONTAINERS', 'AGE']);
    expect(row!.slice(0, 4)).toEqual(['db-proxy', 'True', 'Accepted', 'db-proxy']);
    expect(table(kubectl(['get', 'sidecar-injector', '-A']).out)[1]!.slice(0, 2)).toEqual(['team-a', 'db-proxy']);

    // A spec change through the object bumps the generation; a status in that write is ignored.
    const changed = structuredClone(withStatus) as { spec: { overrides: { resources: boolean } }; status: unknown; metadata: { generation: number } };
    changed.spec.overrides.resources = false;
    changed.status = accepted(7, 'False');
    const updated = (await kas.must('PUT', path, changed)) as typeof changed;
    expect(updated.metadata.generation).toBe(2);
    expect(updated.status).toEqual(withStatus.status);
    // A status write through /status ignores the spec.
    const statusOnly = (await kas.must('PUT', `${path}/status`, { ...updated, spec: { containers: [] }, status: accepted(2, 'False') })) as typeof changed;
    expect(statusOnly.metadata.generation).toBe(2);
    expect(statusOnly.spec).toEqual(updated.spec);
    expect(table(kubectl(['get', 'scp', 'db-proxy', '-n', 'team-a']).out)[1]!.slice(0, 3)).toEqual(['db-proxy', 'False', 'db-proxy']);
    // metav1.Condition's shape is enforced: a condition without a reason is refused.
    const bad = await kas.call('PUT', `${path}/status`, { ...statusOnly, status: { conditions: [{ type: 'Accepted', status: 'True', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] } });
    expect(bad.status).toBe(422);
    expect(String(bad.body.message)).toContain('reason');
  });
});

describe("RBAC: the chart's roles", () => {
  const ruleFor = async (role: string) =>
    ((await kas.must('GET', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`)).rules as { apiGroups?: string[]; resources?: string[]; verbs: string[] }[]).filter((r) =>
      r.apiGroups?.includes('sidecar-injector.io'),
    );

  beforeAll(async () => {
    // Before the chart: the built-in roles know nothing of SidecarProfiles.
    for (const role of ['admin', 'edit', 'view']) expect(await ruleFor(role)).toEqual([]);
    install = new Install(kas, {});
    install.apply();
    for (const [user, role] of [
      ['alice', 'admin'],
      ['eddie', 'edit'],
      ['vera', 'view'],
    ] as const) {
      kas.kubectl(['create', 'rolebinding', `${user}-${role}`, `--clusterrole=${role}`, `--user=${user}`, '-n', 'team-a']);
    }
    injector = await kas.serviceAccountKubeconfig(NS, RELEASE, dir);
  }, 60_000);

  it("kube-controller-manager's aggregation puts the chart's rules into admin, edit (all but status) and view (read)", async () => {
    const all = ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'];
    const has = async (role: string, verbs: string[]) => (await ruleFor(role)).some((r) => r.resources?.includes('sidecarprofiles') && verbs.every((v) => r.verbs.includes(v)));
    await eventually(async () => (await has('admin', all)) && (await has('edit', all)) && (await has('view', ['get', 'list', 'watch'])), 'the aggregated rules in admin, edit and view', 60_000);
    expect((await ruleFor('view')).flatMap((r) => r.verbs)).not.toEqual(expect.arrayContaining(['create']));
    for (const role of ['admin', 'edit', 'view']) expect((await ruleFor(role)).flatMap((r) => r.resources)).not.toContain('sidecarprofiles/status');
  });

  it.each([
    ['admin', 'alice'],
    ['edit', 'eddie'],
  ])('a RoleBinding to %s in team-a: create, update and delete there, not in team-b; never the status', (_role, user) => {
    const as = ['--as', user];
    const name = `${user}-proxy`;
    expect(kubectl(['create', '-f', '-'], { as, input: stringify(profile('team-a', name)) })).toMatchObject({ ok: true });
    expect(kubectl(['patch', 'scp', name, '-n', 'team-a', '--type=merge', '-p', '{"spec":{"overrides":{"resources":false}}}'], { as })).toMatchObject({ ok: true });
    expect(kubectl(['get', 'scp', '-n', 'team-a', '-o', 'name'], { as }).out).toContain(`sidecarprofile.sidecar-injector.io/${name}`);
    const status = kubectl(['patch', 'scp', name, '-n', 'team-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: accepted(1) })], { as });
    expect({ forbidden: forbidden(status), out: status.out }).toEqual({ forbidden: true, out: expect.stringContaining('sidecarprofiles/status') });
    expect(forbidden(kubectl(['create', '-f', '-'], { as, input: stringify(profile('team-b', name)) }))).toBe(true);
    expect(forbidden(kubectl(['get', 'scp', '-n', 'team-b'], { as }))).toBe(true);
    expect(kubectl(['delete', 'scp', name, '-n', 'team-a'], { as })).toMatchObject({ ok: true });
  });

  it('a RoleBinding to view in team-a: get and list there, nothing more', () => {
    const as = ['--as', 'vera'];
    expect(kubectl(['get', 'scp', 'db-proxy', '-n', 'team-a', '-o', 'name'], { as })).toMatchObject({ ok: true, out: 'sidecarprofile.sidecar-injector.io/db-proxy\n' });
    expect(kubectl(['get', 'scp', '-n', 'team-a'], { as })).toMatchObject({ ok: true });
    expect(forbidden(kubectl(['create', '-f', '-'], { as, input: stringify(profile('team-a', 'vera-proxy')) }))).toBe(true);
    expect(forbidden(kubectl(['patch', 'scp', 'db-proxy', '-n', 'team-a', '--type=merge', '-p', '{"spec":{"nativeSidecar":true}}'], { as }))).toBe(true);
    expect(forbidden(kubectl(['delete', 'scp', 'db-proxy', '-n', 'team-a'], { as }))).toBe(true);
    expect(forbidden(kubectl(['get', 'scp', '-n', 'team-b'], { as }))).toBe(true);
  });

  it("the injector's ServiceAccount: lists and watches every namespace's profiles and writes their status, never their spec", async () => {
    const opts = { kubeconfig: injector };
    expect(kubectl(['get', 'sidecarprofiles', '-A', '-o', 'name'], opts)).toMatchObject({ ok: true, out: expect.stringContaining('db-proxy') });
    expect(kubectl(['auth', 'can-i', 'watch', 'sidecarprofiles.sidecar-injector.io', '-A'], opts).out.trim()).toBe('yes');
    // The status written as the injector writes it: a PATCH of /status (kubectl patch --subresource
    // would GET the status first, which the injector needs not: it reads profiles whole).
    const path = `${API}/namespaces/team-a/sidecarprofiles/db-proxy/status`;
    const patched = await asInjector('PATCH', path, { status: accepted(2) }, 'application/merge-patch+json');
    expect(patched.status).toBe(200);
    expect((patched.body.status as { conditions: { observedGeneration: number }[] }).conditions[0]!.observedGeneration).toBe(2);
    expect((await asInjector('PUT', path, { ...patched.body, status: accepted(2, 'False') })).status).toBe(200);
    expect(forbidden(kubectl(['create', '-f', '-'], { ...opts, input: stringify(profile('team-a', 'injector-proxy')) }))).toBe(true);
    expect(forbidden(kubectl(['patch', 'scp', 'db-proxy', '-n', 'team-a', '--type=merge', '-p', '{"spec":{"nativeSidecar":true}}'], opts))).toBe(true);
    expect(forbidden(kubectl(['delete', 'scp', 'db-proxy', '-n', 'team-a'], opts))).toBe(true);
  });

  it('the injector keeps its own ValidatingAdmissionPolicy and binding by name (list and watch by that name), and no other', () => {
    const opts = { kubeconfig: injector };
    const policy = (name: string) => ({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['sidecar-injector.io'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['sidecarprofiles'] }] },
        validations: [{ expression: 'true' }],
      },
    });
    const binding = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: TENANT_POLICY }, spec: { policyName: TENANT_POLICY, validationActions: ['Deny'] } };
    expect(kubectl(['create', '-f', '-'], { ...opts, input: stringify(policy(TENANT_POLICY)) })).toMatchObject({ ok: true });
    expect(kubectl(['create', '-f', '-'], { ...opts, input: stringify(binding) })).toMatchObject({ ok: true });
    expect(kubectl(['patch', 'validatingadmissionpolicy', TENANT_POLICY, '--type=merge', '-p', '{"spec":{"failurePolicy":"Ignore"}}'], opts)).toMatchObject({ ok: true });
    const byName = `--field-selector=metadata.name=${TENANT_POLICY}`;
    expect(kubectl(['get', 'validatingadmissionpolicies', byName, '-o', 'name'], opts).out.trim()).toBe(`validatingadmissionpolicy.admissionregistration.k8s.io/${TENANT_POLICY}`);
    // (kubectl warns that the kubeconfig's namespace does not apply to a cluster-scoped resource.)
    expect(kubectl(['auth', 'can-i', 'watch', `validatingadmissionpolicybindings/${TENANT_POLICY}`], opts).out).toMatch(/^yes$/m);
    expect(forbidden(kubectl(['get', 'validatingadmissionpolicies'], opts))).toBe(true);

    kas.kubectl(['create', '-f', '-'], stringify(policy('someone-elses')));
    for (const args of [
      ['get', 'validatingadmissionpolicy', 'someone-elses'],
      ['patch', 'validatingadmissionpolicy', 'someone-elses', '--type=merge', '-p', '{"spec":{"failurePolicy":"Ignore"}}'],
      ['delete', 'validatingadmissionpolicy', 'someone-elses'],
    ]) expect({ args, forbidden: forbidden(kubectl(args, opts)) }).toEqual({ args, forbidden: true });
    expect(kubectl(['delete', 'validatingadmissionpolicybinding', TENANT_POLICY], opts)).toMatchObject({ ok: true });
    expect(kubectl(['delete', 'validatingadmissionpolicy', TENANT_POLICY], opts)).toMatchObject({ ok: true });
  });
});


describe('the harness with kube-controller-manager', () => {
  it('stop() ends kube-controller-manager with etcd and kube-apiserver; one that cannot start fails the start, which stops the rest and keeps the logs', async () => {
    // The file's own control plane runs all three.
    expect(processesNaming(kas.dir)).toHaveLength(3);
    const err = await ApiServer.start({ controllers: ['no-such-controller'] }).then(
      (other) => other.stop().then(() => new Error('started with an unknown controller')),
      (e: Error) => e,
    );
    expect(err.message).toContain('kube-controller-manager: the process exited');
    expect(err.message).toMatch(/no-such-controller.* is not in the list of known controllers/);
    const failed = /control plane in (\S+) \(its logs stay there\)/.exec(err.message)![1]!;
    expect(processesNaming(failed)).toEqual([]);
    expect(readFileSync(join(failed, 'kube-controller-manager.log'), 'utf8')).toContain('no-such-controller');
  }, 180_000);
});
