/**
 * The Helm chart, rendered by the real Helm (render.ts: `helm template`), for
 * a set of value files: `helm lint --strict` passes, every document parses and validates against the Kubernetes
 * schema of its kind (kubernetes-models, generated from the Kubernetes and
 * cert-manager OpenAPI schemas), the webhook never selects kube-system or
 * the release namespace, the ConfigMap's config passes validate-config, RBAC
 * grants nothing beyond the README's list, values.schema.json rejects typos,
 * and the default render matches its golden file.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { runCli } from '../helpers/process.js';
import { CHART, helm, render, valuesFile } from './render.js';
import { unknownFields } from './unknown-fields.js';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> } } & Record<string, unknown>;

const GOLDEN = new URL('./golden/default.yaml', import.meta.url);
const VALUE_SETS: Record<string, string[]> = {
  defaults: [],
  'cert-manager': [valuesFile('cert-manager')],
  'cert-manager with an issuer': [valuesFile('cert-manager-issuer')],
  'own secret': [valuesFile('secret')],
  'failurePolicy Ignore': [valuesFile('ignore')],
  'opt-out, custom profiles, audit': [valuesFile('opt-out')],
  'HA off, hostNetwork': [valuesFile('single')],
  'monitoring on': [valuesFile('monitoring')],
};

function docsOf(text: string): Doc[] {
  const docs = parseAllDocuments(text);
  for (const d of docs) if (d.errors.length > 0) throw new Error(`render is not YAML: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS() as Doc).filter(Boolean);
}

function renderDocs(values: string[]): Doc[] {
  const r = render(values);
  if (!r.ok) throw new Error(`render failed: ${r.stderr}`);
  return docsOf(r.stdout);
}

/** kubernetes-models' class for an apiVersion and kind, with the JSON-schema validate() it was generated with. */
async function modelFor(apiVersion: string, kind: string): Promise<{ validate(): void } & (new (o: unknown) => { validate(): void })> {
  const path = apiVersion.startsWith('cert-manager.io/')
    ? `@kubernetes-models/cert-manager/${apiVersion}`
    : apiVersion.startsWith('monitoring.coreos.com/')
      ? `@kubernetes-models/prometheus-operator/${apiVersion}`
      : `kubernetes-models/${apiVersion}`;
  const mod = (await import(path)) as Record<string, unknown>;
  const model = mod[kind];
  if (typeof model !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model as never;
}

/** What `serve` and the certgen Job may do (README, RBAC): group/resource → verbs (and names, where limited). */
const ALLOWED: Record<string, string[]> = {
  '/namespaces': ['get', 'list', 'watch'],
  '/events': ['create', 'patch'],
  'admissionregistration.k8s.io/mutatingwebhookconfigurations': ['get', 'patch'],
  'apps/replicasets': ['get'],
  'batch/jobs': ['get'],
  '/secrets': ['get', 'create', 'patch'],
  // The replicas' Leases (--patch-ca-bundle), in the release namespace only (a Role).
  'coordination.k8s.io/leases': ['create', 'get', 'list', 'update', 'delete'],
  // Policy mode (--policy): its policies and bindings by name, and canary pods (dry run) in its namespace.
  'admissionregistration.k8s.io/mutatingadmissionpolicies': ['get', 'patch', 'delete', 'create'],
  'admissionregistration.k8s.io/mutatingadmissionpolicybindings': ['get', 'patch', 'delete', 'create'],
  // Both modes also keep the ValidatingAdmissionPolicy refusing SidecarProfiles outside the limits (by name but create).
  'admissionregistration.k8s.io/validatingadmissionpolicies': ['get', 'list', 'watch', 'update', 'patch', 'delete', 'create'],
  'admissionregistration.k8s.io/validatingadmissionpolicybindings': ['get', 'list', 'watch', 'update', 'patch', 'delete', 'create'],
  '/pods': ['list', 'create'],
  // Tenant profiles (SPEC 9): read, and their status written.
  'sidecar-injector.io/sidecarprofiles': ['get', 'list', 'watch'],
  'sidecar-injector.io/sidecarprofiles/status': ['update', 'patch'],
};

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
/** ClusterRoles the chart labels for aggregation into the built-in admin, edit and view roles: the tenants' rights, not the injector's. */
const aggregated = (d: Doc) => Object.keys(d.metadata.labels ?? {}).some((k) => k.startsWith('rbac.authorization.k8s.io/aggregate-to-'));

describe.each(Object.entries(VALUE_SETS))('chart with %s', (_name, values) => {
  const docs = renderDocs(values);
  const of = (kind: string) => docs.filter((d) => d.kind === kind);
  const one = (kind: string) => {
    const found = of(kind);
    expect(found.length).toBe(1);
    return found[0]!;
  };

  it('renders documents that validate against the schema of their kind, with no unknown field', async () => {
    expect(docs.length).toBeGreaterThan(5);
    for (const doc of docs) {
      const Model = await modelFor(doc.apiVersion, doc.kind);
      expect(() => new Model(doc).validate()).not.toThrow();
      const unknown = unknownFields(doc);
      // cert-manager's and the Prometheus Operator's kinds are CRDs: client-node has no model; their JSON schema above is all we check.
      if (!/^(cert-manager\.io|monitoring\.coreos\.com)\//.test(doc.apiVersion)) expect({ kind: doc.kind, unknown }).toEqual({ kind: doc.kind, unknown: [] });
    }
  });

  it('the unknown-field check itself catches a typo', () => {
    const dep = structuredClone(docs.find((d) => d.kind === 'Deployment')!) as Doc & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    dep.spec.template.spec.containers[0]!.imagePullPolcy = 'Always';
    expect(unknownFields(dep)).toEqual(['Deployment.spec.template.spec.containers[0].imagePullPolcy']);
  });

  it('never sends kube-system or its own namespace to the webhook; the webhook is set up for re-invocation', () => {
    const mwc = one('MutatingWebhookConfiguration') as Doc & { webhooks: Record<string, unknown>[] };
    for (const hook of mwc.webhooks) {
      const exprs = (hook.namespaceSelector as { matchExpressions: { key: string; operator: string; values: string[] }[] }).matchExpressions;
      const byName = exprs.find((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn')!;
      expect(byName.values).toEqual(expect.arrayContaining(['kube-system', 'sidecar-injector']));
      expect(hook).toMatchObject({ sideEffects: 'None', reinvocationPolicy: 'IfNeeded', admissionReviewVersions: ['v1', 'v1beta1'] });
      expect(['Fail', 'Ignore']).toContain(hook.failurePolicy);
      expect(hook.timeoutSeconds).toBeLessThanOrEqual(30);
      expect(hook.rules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
      expect((hook.clientConfig as { service: unknown }).service).toEqual({ name: 'sidecar-injector', namespace: 'sidecar-injector', path: '/mutate', port: 443 });
    }
  });

  it('two entries split by the namespace label: enabled namespaces send every pod, the others get matchConditions from the replicas', () => {
    const mwc = one('MutatingWebhookConfiguration') as Doc & { webhooks: { name: string; namespaceSelector: { matchExpressions: unknown[] } }[] };
    expect(mwc.webhooks.map((w) => w.name)).toEqual(['namespaces.pods.sidecar-injector.io', 'pods.sidecar-injector.io']);
    expect(mwc.webhooks.map((w) => w.namespaceSelector.matchExpressions.find((e) => (e as { key: string }).key === 'sidecar-injector.io/injection'))).toEqual([
      { key: 'sidecar-injector.io/injection', operator: 'In', values: ['enabled'] },
      { key: 'sidecar-injector.io/injection', operator: 'NotIn', values: ['enabled'] },
    ]);
    const args = (one('Deployment').spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]!.args;
    expect(args).toContain(`--webhook-config=${mwc.metadata.name as string}`);
  });

  it('ships a config that validate-config accepts', () => {
    const cm = of('ConfigMap').find((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'sidecar-injector-config')!;
    const text = (cm.data as Record<string, string>)['config.yaml']!;
    const parsed = parseConfigText(text, 'ConfigMap');
    expect(parsed.ok ? [] : parsed.errors).toEqual([]);
  });

  it('grants nothing beyond the RBAC the README lists', () => {
    const rules = [...of('ClusterRole'), ...of('Role')].filter((r) => !aggregated(r)).flatMap((r) => r.rules as Rule[]);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources) {
          const allowed = ALLOWED[`${group}/${resource}`];
          expect({ resource: `${group}/${resource}`, extra: rule.verbs.filter((v) => !allowed?.includes(v)) }).toEqual({ resource: `${group}/${resource}`, extra: [] });
        }
      }
      if (rule.resources.includes('mutatingwebhookconfigurations')) expect(rule.resourceNames).toEqual(['sidecar-injector']);
      if (rule.resources.includes('secrets') && rule.verbs.includes('get')) expect(rule.resourceNames).toBeDefined();
    }
    expect(JSON.stringify(rules)).not.toContain('"*"');
    // The tenant policy is kept by name; only create cannot be.
    for (const rule of rules.filter((r) => r.resources.includes('validatingadmissionpolicies') && r.verbs.some((v) => v !== 'create'))) expect(rule.resourceNames).toBeDefined();
  });

  it('lets the injector read SidecarProfiles and write their status, never their spec; its tenant policy by name', () => {
    const role = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'sidecar-injector')!;
    const rules = role.rules as Rule[];
    expect(rules).toEqual(
      expect.arrayContaining([
        { apiGroups: ['sidecar-injector.io'], resources: ['sidecarprofiles'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['sidecar-injector.io'], resources: ['sidecarprofiles/status'], verbs: ['update', 'patch'] },
        {
          apiGroups: ['admissionregistration.k8s.io'],
          resources: ['validatingadmissionpolicies', 'validatingadmissionpolicybindings'],
          resourceNames: ['sidecar-injector-sidecarprofiles'],
          verbs: ['get', 'list', 'watch', 'update', 'patch', 'delete'],
        },
      ]),
    );
    const creates = rules.filter((r) => r.resources.includes('validatingadmissionpolicybindings') && r.verbs.includes('create'));
    expect(creates.length).toBe(1);
    expect(creates[0]!.resourceNames).toBeUndefined();
    expect(rules.filter((r) => r.apiGroups.includes('sidecar-injector.io')).flatMap((r) => r.verbs)).not.toEqual(expect.arrayContaining(['create']));
  });

  it('aggregates SidecarProfile rights into the built-in admin and edit (all but status) and view (read) roles, and binds them to nobody', () => {
    const roles = of('ClusterRole').filter(aggregated);
    expect(roles.map((r) => [r.metadata.name, Object.entries(r.metadata.labels!).filter(([k]) => k.startsWith('rbac.authorization.k8s.io/'))])).toEqual([
      [
        'sidecar-injector-sidecarprofiles-edit',
        [
          ['rbac.authorization.k8s.io/aggregate-to-admin', 'true'],
          ['rbac.authorization.k8s.io/aggregate-to-edit', 'true'],
        ],
      ],
      ['sidecar-injector-sidecarprofiles-view', [['rbac.authorization.k8s.io/aggregate-to-view', 'true']]],
    ]);
    expect(roles.map((r) => r.rules)).toEqual([
      [{ apiGroups: ['sidecar-injector.io'], resources: ['sidecarprofiles'], verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'] }],
      [{ apiGroups: ['sidecar-injector.io'], resources: ['sidecarprofiles'], verbs: ['get', 'list', 'watch'] }],
    ]);
    const bound = [...of('ClusterRoleBinding'), ...of('RoleBinding')].map((b) => (b.roleRef as { name: string }).name);
    for (const r of roles) expect(bound).not.toContain(r.metadata.name);
  });

  it('runs the pods hardened: non-root, read-only root, no capabilities, probes on /healthz and /readyz', () => {
    const dep = one('Deployment') as Doc & { spec: { template: { spec: { containers: Record<string, unknown>[]; securityContext: Record<string, unknown> } } } };
    const pod = dep.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    const c = pod.containers[0]!;
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect((c.livenessProbe as { httpGet: { path: string } }).httpGet.path).toBe('/healthz');
    expect((c.readinessProbe as { httpGet: { path: string } }).httpGet.path).toBe('/readyz');
    expect(c.args).toEqual(expect.arrayContaining(['serve', '--config=/etc/sidecar-injector/config/config.yaml']));
  });
});

describe('chart modes', () => {
  const argsOf = (docs: Doc[]) => ((docs.find((d) => d.kind === 'Deployment')!.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]!.args);
  it('certgen (default): a hook Job creates the Secret if missing and the replicas write the CA', () => {
    const docs = renderDocs([]);
    const job = docs.find((d) => d.kind === 'Job')!;
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const spec = (job.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]!;
    expect(spec.args).toEqual(['certs', '--service=sidecar-injector', '--namespace=sidecar-injector', '--secret=sidecar-injector-tls', '--renew-before=720h', '--days=3650']);
    expect(argsOf(docs)).toContain('--patch-ca-bundle=sidecar-injector');
    expect(docs.some((d) => d.apiVersion.startsWith('cert-manager.io'))).toBe(false);
  });

  it('cert-manager: Issuer and Certificate; the replicas write the caBundle (keeping every CA a replica needs), cert-manager only when asked', () => {
    const docs = renderDocs([valuesFile('cert-manager')]);
    const mwc = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
    expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    expect(docs.filter((d) => d.kind === 'Certificate').map((d) => d.metadata.name)).toEqual(['sidecar-injector-ca', 'sidecar-injector-tls']);
    expect(argsOf(docs)).toContain('--patch-ca-bundle=sidecar-injector');
    expect(docs.some((d) => d.kind === 'Job')).toBe(false);
    const withIssuer = renderDocs([valuesFile('cert-manager-issuer')]);
    expect(withIssuer.filter((d) => d.kind === 'Issuer')).toEqual([]);
    expect((withIssuer.find((d) => d.kind === 'Certificate')!.spec as { issuerRef: unknown }).issuerRef).toEqual({ kind: 'ClusterIssuer', name: 'internal-ca' });

    const dir = mkdtempSync(join(tmpdir(), 'values-'));
    writeFileSync(join(dir, 'inject-ca.yaml'), 'tls:\n  mode: cert-manager\n  certManager:\n    injectCa: true\n');
    const injected = renderDocs([valuesFile('cert-manager'), join(dir, 'inject-ca.yaml')]);
    expect(injected.find((d) => d.kind === 'MutatingWebhookConfiguration')!.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('sidecar-injector/sidecar-injector-tls');
    expect(argsOf(injected).some((a) => a.startsWith('--patch-ca-bundle'))).toBe(false);
    expect(injected.some((d) => d.kind === 'Role' && d.metadata.name === 'sidecar-injector-replicas')).toBe(false);
  });

  it('replicas writing the caBundle know themselves (POD_NAME, POD_NAMESPACE) and may keep Leases in their own namespace only', () => {
    const docs = renderDocs([]);
    const env = (docs.find((d) => d.kind === 'Deployment')!.spec as { template: { spec: { containers: { env: { name: string; valueFrom: unknown }[] }[] } } }).template.spec.containers[0]!.env;
    expect(env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    const role = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'sidecar-injector-replicas')!;
    expect((role.metadata as { namespace?: string }).namespace).toBe('sidecar-injector');
    expect(role.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'get', 'list', 'update', 'delete'] }]);
    const binding = docs.find((d) => d.kind === 'RoleBinding' && d.metadata.name === 'sidecar-injector-replicas')!;
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'sidecar-injector', namespace: 'sidecar-injector' }]);
  });

  it('injection.mode policy: no webhook configuration, Service or certificates; one replica running serve --policy, with RBAC for its own policies and dry-run canary pods', async () => {
    const docs = renderDocs([valuesFile('policy')]);
    const kinds = docs.map((d) => d.kind);
    for (const absent of ['MutatingWebhookConfiguration', 'Service', 'Job', 'Certificate', 'Issuer', 'PodDisruptionBudget']) expect(kinds).not.toContain(absent);
    expect(docs.some((d) => d.kind === 'Secret' || d.metadata.name.endsWith('-tls'))).toBe(false);
    const dep = docs.find((d) => d.kind === 'Deployment')! as Doc & { spec: { replicas: number; template: { spec: { containers: { args: string[]; ports: { name: string }[]; volumeMounts: { name: string }[] }[]; volumes: { name: string }[] } } } };
    expect(dep.spec.replicas).toBe(1);
    const c = dep.spec.template.spec.containers[0]!;
    expect(c.args).toContain('--policy=sidecar-injector');
    expect(c.args.some((a) => a.startsWith('--tls-') || a.startsWith('--patch-ca-bundle') || a.startsWith('--webhook-config') || a.startsWith('--port='))).toBe(false);
    expect(c.ports.map((p) => p.name)).toEqual(['metrics']);
    expect(dep.spec.template.spec.volumes.map((v) => v.name)).toEqual(['config']);
    const rules = [...docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role')].flatMap((r) => r.rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[]);
    const named = rules.find((r) => r.resources.includes('mutatingadmissionpolicies') && r.verbs.includes('patch'))!;
    expect(named.resourceNames).toEqual(['sidecar-injector', 'sidecar-injector-namespaces', 'sidecar-injector-candidate']);
    // Tenant profiles are served in policy mode too: read, status, and their policy by name.
    expect(rules).toContainEqual({ apiGroups: ['sidecar-injector.io'], resources: ['sidecarprofiles/status'], verbs: ['update', 'patch'] });
    expect(rules.find((r) => r.resourceNames?.includes('sidecar-injector-sidecarprofiles'))?.verbs).toEqual(['get', 'list', 'watch', 'update', 'patch', 'delete']);
    expect(rules.some((r) => r.resources.includes('mutatingwebhookconfigurations') || r.resources.includes('leases') || r.resources.includes('events'))).toBe(false);
    const canary = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'sidecar-injector-canary')!;
    expect(canary.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['create'] }]);
    for (const doc of docs) {
      const Model = await modelFor(doc.apiVersion, doc.kind);
      expect(() => new Model(doc).validate()).not.toThrow();
      expect({ kind: doc.kind, unknown: unknownFields(doc) }).toEqual({ kind: doc.kind, unknown: [] });
    }
    const notes = render([valuesFile('policy')], { notes: true }).stdout;
    expect(notes).toContain('kubectl get mutatingadmissionpolicy sidecar-injector sidecar-injector-namespaces');
    expect(notes).not.toContain('mutatingwebhookconfiguration');
  });

  it('values.schema.json knows injection.mode: webhook or policy', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ strict: false }).compile(schema);
    expect(validate({ injection: { mode: 'policy' } })).toBe(true);
    expect(validate({ injection: { mode: 'policies' } })).toBe(false);
  });

  it('secret: mounts the named Secret, no Job, replicas write its CA', () => {
    const docs = renderDocs([valuesFile('secret')]);
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    expect(JSON.stringify(dep)).toContain('"secretName":"my-webhook-tls"');
    expect(docs.some((d) => d.kind === 'Job')).toBe(false);
    expect(argsOf(docs)).toContain('--patch-ca-bundle=sidecar-injector');
  });

  it('allowPodOptOut: false drops the objectSelector, so inject=false pods still reach the webhook to be refused', () => {
    const docs = renderDocs([valuesFile('opt-out')]);
    for (const hook of docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!.webhooks as Record<string, unknown>[]) expect(hook.objectSelector).toBeUndefined();
    const optOut = expect.objectContaining({ objectSelector: { matchExpressions: [{ key: 'sidecar-injector.io/inject', operator: 'NotIn', values: ['false'] }] } });
    expect(renderDocs([]).find((d) => d.kind === 'MutatingWebhookConfiguration')!.webhooks).toEqual([optOut, optOut]);
    expect(argsOf(docs)).toEqual(expect.arrayContaining(['--no-events', '--audit-interval=15m']));
  });

  it('HA: two replicas, a PodDisruptionBudget and anti-affinity by default; none of them with HA off', () => {
    const ha = renderDocs([]);
    expect((ha.find((d) => d.kind === 'Deployment')!.spec as { replicas: number }).replicas).toBe(2);
    expect(ha.some((d) => d.kind === 'PodDisruptionBudget')).toBe(true);
    expect(JSON.stringify(ha.find((d) => d.kind === 'Deployment'))).toContain('podAntiAffinity');
    const single = renderDocs([valuesFile('single')]);
    expect(single.some((d) => d.kind === 'PodDisruptionBudget')).toBe(false);
    expect(JSON.stringify(single.find((d) => d.kind === 'Deployment'))).not.toContain('podAntiAffinity');
  });

  it('NOTES.txt says how to opt a namespace in and how to check it worked', () => {
    const notes = render([], { notes: true });
    expect(notes.ok).toBe(true);
    expect(notes.stdout).toContain('kubectl label namespace NAMESPACE sidecar-injector.io/injection=enabled');
    expect(notes.stdout).toContain('sidecar-injector\\.io/status');
  });

  it('NOTES.txt points at SidecarProfiles only when tenant profiles are on', () => {
    const dir = mkdtempSync(join(tmpdir(), 'values-'));
    writeFileSync(join(dir, 'tenant.yaml'), 'config:\n  tenantProfiles:\n    enabled: true\n');
    writeFileSync(join(dir, 'null.yaml'), 'config:\n  tenantProfiles: null\n');
    expect(render([join(dir, 'tenant.yaml')], { notes: true }).stdout).toContain('kubectl get sidecarprofiles -A -o wide');
    expect(render([], { notes: true }).stdout).not.toContain('sidecarprofiles');
    const withNull = render([join(dir, 'null.yaml')], { notes: true });
    expect({ ok: withNull.ok, mentions: withNull.stdout.includes('sidecarprofiles') }).toEqual({ ok: true, mentions: false });
  });

  it('the default render matches its golden file (UPDATE_GOLDEN=1 rewrites it)', () => {
    const text = render([]).stdout;
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text);
    expect(text).toBe(readFileSync(GOLDEN, 'utf8'));
  });

  it("the chart's default config is config/example.yaml (one source of truth for the example profile)", () => {
    const cm = renderDocs([]).find((d) => d.kind === 'ConfigMap')!;
    const example = readFileSync(new URL('../../config/example.yaml', import.meta.url), 'utf8');
    expect(parse((cm.data as Record<string, string>)['config.yaml']!)).toEqual(parse(example));
  });

  it('the shipped config passes the validate-config command itself', async () => {
    const cm = renderDocs([]).find((d) => d.kind === 'ConfigMap')!;
    const file = join(mkdtempSync(join(tmpdir(), 'chart-config-')), 'config.yaml');
    writeFileSync(file, (cm.data as Record<string, string>)['config.yaml']!);
    const out = await runCli(['validate-config', file]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
  });
});

describe("the chart's CRDs (crds/)", () => {
  it('helm install creates the SidecarProfile CRD first: the `crds` command\'s definition, valid for its kind, no unknown field', async () => {
    const r = render([], { crds: true });
    expect(r.ok).toBe(true);
    const docs = docsOf(r.stdout);
    const crd = docs[0]!;
    expect([crd.kind, crd.metadata.name]).toEqual(['CustomResourceDefinition', 'sidecarprofiles.sidecar-injector.io']);
    expect(docs.filter((d) => d.kind === 'CustomResourceDefinition')).toHaveLength(1);
    expect(crd).toEqual(parse(readFileSync(join(CHART, 'crds', 'sidecarprofiles.yaml'), 'utf8')));
    const out = await runCli(['crds']);
    expect(readFileSync(join(CHART, 'crds', 'sidecarprofiles.yaml'), 'utf8')).toBe(out.stdout);
    const Model = await modelFor(crd.apiVersion, crd.kind);
    expect(() => new Model(crd).validate()).not.toThrow();
    expect(unknownFields(crd)).toEqual([]);
    // Without --include-crds (helm template's default) the templates alone, as before.
    expect(docsOf(render([]).stdout).some((d) => d.kind === 'CustomResourceDefinition')).toBe(false);
  });
});

describe('helm lint --strict', () => {
  it.each(Object.entries(VALUE_SETS))('passes with %s', (_name, values) => {
    const r = helm(['lint', '--strict', CHART, ...values.flatMap((v) => ['-f', v])]);
    expect({ ok: r.ok, out: r.ok ? '' : r.stdout + r.stderr }).toEqual({ ok: true, out: '' });
  });

  it('fails on a value the schema does not know (Helm checks values.schema.json itself)', () => {
    const r = helm(['lint', '--strict', CHART, '--set', 'replicaCont=3']);
    expect(r.ok).toBe(false);
    expect(r.stdout + r.stderr).toContain('replicaCont');
  });
});

describe('values.schema.json', () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object);
  const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const errorsOf = (v: unknown) => (validate(v) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));

  it('accepts the defaults and every test value set', () => {
    expect(errorsOf(defaults)).toEqual([]);
    for (const files of Object.values(VALUE_SETS)) {
      for (const f of files) {
        const merged = { ...defaults, ...(parse(readFileSync(f, 'utf8')) as object) };
        expect({ f, errors: errorsOf(merged) }).toEqual({ f, errors: [] });
      }
    }
  });

  it('rejects a typo in a value, at any depth', () => {
    expect(errorsOf({ ...defaults, replicaCont: 3 }).join()).toContain('additionalProperty":"replicaCont"');
    expect(errorsOf({ ...defaults, webhook: { failurPolicy: 'Ignore' } }).join()).toContain('failurPolicy');
    expect(errorsOf({ ...defaults, tls: { mode: 'certmanager' } }).join()).toContain('allowedValues');
    expect(errorsOf({ ...defaults, config: { ...(defaults.config as object), polcy: 'opt-out' } }).join()).toContain('polcy');
  });
});
