/**
 * The policy compiler (issue 23), as CI can check it: the objects' shape and
 * determinism, what is refused and why, the API version by server, every
 * CEL expression parsed by a real CEL parser (@bufbuild/cel; the API server
 * also type-checks them, which `npm run e2e` does on a real 1.36), and each
 * lesson of the trial on a real API server that the compiler must keep:
 * homogeneous map literals, no list of objects as a patch value, the status
 * guard for reinvocation, matchConditions only where the namespace cannot
 * inject. That the stored pods equal the webhook's is test/e2e/policy.e2e.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { parse } from '@bufbuild/cel';
import { celValue, compilePolicy, policyApiVersion, type PolicyObject } from '../../src/core/policy.js';
import { matchConditionsFor } from '../../src/core/match-conditions.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { runCli } from '../helpers/process.js';

const V136 = { major: 1, minor: 36 };
/** The tests' config without its per-pod overrides, which policy mode does not compile yet. */
const POLICY_YAML = TEST_CONFIG_YAML.replace('    overrides:\n      resources: true\n      imageRegistries: [registry.example.com/logging/]\n', '');
const config = compile(POLICY_YAML);

function objects(yaml = POLICY_YAML, name = 'sidecar-injector'): PolicyObject[] {
  const r = compilePolicy(compile(yaml), name, V136);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.objects;
}

type PolicySpec = { matchConditions?: { name: string; expression: string }[]; variables: { name: string; expression: string }[]; mutations: { patchType: string; jsonPatch: { expression: string } }[]; validations?: { expression: string }[]; reinvocationPolicy: string; failurePolicy: string };
const specOf = (o: PolicyObject) => o.spec as unknown as PolicySpec;
const expressions = (o: PolicyObject) =>
  [...(specOf(o).matchConditions ?? []), ...specOf(o).variables, ...(specOf(o).mutations ?? []).map((m) => m.jsonPatch), ...(specOf(o).validations ?? [])].map((x) => x.expression);

describe('compilePolicy', () => {
  it('two policies and their bindings, split by the namespace label like the chart\'s webhook; matchConditions only where the namespace cannot inject', () => {
    const objs = objects();
    expect(objs.map((o) => `${o.kind} ${o.metadata.name}`)).toEqual([
      'MutatingAdmissionPolicy sidecar-injector-namespaces',
      'MutatingAdmissionPolicyBinding sidecar-injector-namespaces',
      'MutatingAdmissionPolicy sidecar-injector',
      'MutatingAdmissionPolicyBinding sidecar-injector',
      'ValidatingAdmissionPolicy sidecar-injector-warn-namespaces',
      'ValidatingAdmissionPolicyBinding sidecar-injector-warn-namespaces',
      'ValidatingAdmissionPolicy sidecar-injector-warn',
      'ValidatingAdmissionPolicyBinding sidecar-injector-warn',
    ]);
    expect(objs.every((o) => o.apiVersion === 'admissionregistration.k8s.io/v1')).toBe(true);
    const selector = (b: PolicyObject) => (b.spec as { matchResources: { namespaceSelector: { matchExpressions: { key: string; operator: string }[] } } }).matchResources.namespaceSelector.matchExpressions;
    const [enabled, enabledBinding, other, otherBinding, warnEnabled, warnEnabledBinding, warn, warnBinding] = objs as [PolicyObject, PolicyObject, PolicyObject, PolicyObject, PolicyObject, PolicyObject, PolicyObject, PolicyObject];
    // The webhook's warnings, to the pods the webhook is sent: split the same way, so a pod that does not ask is not even looked at.
    expect(specOf(warnEnabled).matchConditions).toBeUndefined();
    expect(specOf(warn).matchConditions).toEqual(matchConditionsFor(config));
    for (const b of [warnEnabledBinding, warnBinding]) expect((b.spec as { validationActions: string[] }).validationActions).toEqual(['Warn']);
    expect(selector(warnEnabledBinding)).toEqual(selector(enabledBinding));
    expect(selector(warnBinding)).toEqual(selector(otherBinding));
    // Both mutating policies skip a pod already injected (the reinvocation's second run costs a condition).
    const notInjected = { name: 'sidecar-injector-not-injected', expression: '!(has(object.metadata.annotations) && "sidecar-injector.io/status" in object.metadata.annotations)' };
    expect(specOf(enabled).matchConditions).toEqual([notInjected]);
    expect(specOf(other).matchConditions).toEqual([notInjected, ...matchConditionsFor(config)]);
    expect(selector(enabledBinding).find((e) => e.key === 'sidecar-injector.io/injection')!.operator).toBe('In');
    expect(selector(otherBinding).find((e) => e.key === 'sidecar-injector.io/injection')!.operator).toBe('NotIn');
    expect(selector(otherBinding).find((e) => e.key === 'kubernetes.io/metadata.name')).toMatchObject({ operator: 'NotIn' });
    for (const o of [enabled, other]) expect(specOf(o)).toMatchObject({ failurePolicy: 'Fail', reinvocationPolicy: 'IfNeeded' });
  });

  it('same config in, same bytes out; another config, another revision label', () => {
    expect(JSON.stringify(objects())).toBe(JSON.stringify(objects()));
    const other = objects(`${POLICY_YAML}\nallowPodOptOut: false\n`);
    expect(other[0]!.metadata.labels['sidecar-injector.io/revision']).not.toBe(objects()[0]!.metadata.labels['sidecar-injector.io/revision']);
  });

  it('every expression is CEL a parser accepts', () => {
    for (const yaml of [POLICY_YAML, TEST_CONFIG_YAML]) {
      for (const o of objects(yaml).filter((x) => x.kind.endsWith('Policy'))) for (const e of expressions(o)) expect(() => parse(e)).not.toThrow();
    }
  });

  it('keeps what the trial on a real API server taught: the status guard, lists created empty then filled, the status annotation with the revision', () => {
    const policy = objects()[2]!;
    const profiles = specOf(policy).variables.find((v) => v.name === 'profiles')!.expression;
    expect(profiles).toContain('"sidecar-injector.io/status" in variables.annotations ? [] :');
    const patch = specOf(policy).mutations[0]!.jsonPatch.expression;
    expect(patch).toContain('path: "/spec/initContainers", value: []');
    expect(patch).toContain('path: "/spec/volumes", value: []');
    // No patch value is a list of objects (kubernetes#142181): every list value is empty.
    const listValues = [...patch.matchAll(/value: \[(.)/g)].map((m) => m[1]);
    expect(listValues.length).toBeGreaterThan(0);
    expect(listValues.every((c) => c === ']')).toBe(true);
    expect(patch).toContain(JSON.stringify(JSON.stringify(config.revision)));
    expect(patch).toContain('/metadata/annotations/sidecar-injector.io~1status');
  });

  it('keeps the rest of the trial\'s lessons: no Object or JSONPatch type in variables, no variables or namespaceObject in matchConditions, JSONPatch rather than ApplyConfiguration (atomic lists, item order)', () => {
    for (const o of objects().filter((x) => x.kind.endsWith('Policy'))) {
      const spec = specOf(o);
      for (const v of spec.variables) expect(v.expression).not.toMatch(/JSONPatch\{|\bObject[.{]/);
      for (const c of spec.matchConditions ?? []) expect(c.expression).not.toMatch(/variables\.|namespaceObject/);
      for (const m of spec.mutations ?? []) expect(m.patchType).toBe('JSONPatch');
    }
  });

  it('writes map literals CEL accepts as one type: every map value is wrapped in dyn()', () => {
    expect(celValue({ name: 'agent', ports: [{ containerPort: 2020 }], securityContext: { capabilities: { drop: ['ALL'] }, runAsNonRoot: true } })).toBe(
      '{"name": dyn("agent"), "ports": dyn([dyn({"containerPort": dyn(2020)})]), "securityContext": dyn({"capabilities": dyn({"drop": dyn([dyn("ALL")])}), "runAsNonRoot": dyn(true)})}',
    );
    expect(celValue('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(() => parse(celValue({ a: [1, 'x', { b: null }], 'c/d~e': 1.5 }))).not.toThrow();
  });

  it('onConflict: deny is a ValidatingAdmissionPolicy that refuses a pod the mutation left alone for a conflict', () => {
    const deny = objects(`${POLICY_YAML}\nonConflict: deny\n`);
    const vap = deny.find((o) => o.metadata.name === 'sidecar-injector-deny' && o.kind === 'ValidatingAdmissionPolicy')!;
    expect((vap.spec as { validations: { expression: string; reason: string }[] }).validations).toEqual([
      expect.objectContaining({ expression: '!(size(variables.profiles) > 0 && !("sidecar-injector.io/status" in variables.annotations) && variables.conflict)', reason: 'Invalid' }),
    ]);
    expect(deny.find((o) => o.metadata.name === 'sidecar-injector-deny' && o.kind === 'ValidatingAdmissionPolicyBinding')!.spec).toMatchObject({ validationActions: ['Deny'] });
    expect(objects().some((o) => o.metadata.name === 'sidecar-injector-deny')).toBe(false);
    for (const o of deny.filter((x) => x.kind.endsWith('Policy'))) for (const e of expressions(o)) expect(() => parse(e)).not.toThrow();
  });

  it('refuses, with the config path and why, what it does not compile yet; never drops it', () => {
    const partial = compilePolicy(
      compile(`
defaultProfiles: [a]
profiles:
  a:
    containers: [{ name: a, image: a, resources: { limits: { cpu: 100m } } }]
    initContainers: [{ name: b, image: b }]
    overrides: { resources: true, imageRegistries: [registry.example.com/] }
`),
      'x',
      V136,
    );
    expect(partial.ok ? [] : partial.problems.map((p) => p.split(':')[0])).toEqual(['profiles.a.initContainers[0].resources', 'profiles.a.containers[0].resources']);
  });

  it('refuses tenant profiles (SPEC 9) until policy mode serves them, rather than storing other pods than the webhook', () => {
    const tenants = compilePolicy(compile('defaultProfiles: []\nprofiles: {}\ntenantProfiles: { enabled: true }\n'), 'x', V136);
    expect(tenants.ok ? [] : tenants.problems).toEqual([expect.stringMatching(/^tenantProfiles\.enabled: SidecarProfiles are served by the webhook only/)]);
    expect(compilePolicy(compile('defaultProfiles: []\nprofiles: {}\ntenantProfiles: { enabled: false }\n'), 'x', V136).ok).toBe(true);
  });

  it('checks every field it would emit against core/v1\'s field table: a field the API server does not know is refused, never sent', () => {
    // The loader refuses such a profile already; a compiled config that slipped past it must still not compile.
    const sound = compile(POLICY_YAML);
    const broken = structuredClone(sound);
    const profile = Object.values(broken.config.profiles)[0]!;
    (profile.containers[0] as unknown as Record<string, unknown>).restartPolicyy = 'Always';
    (profile.volumes[0] as unknown as Record<string, unknown>).emptyDir = { medium: [] };
    const r = compilePolicy(broken, 'x', V136);
    expect(r.ok ? [] : r.problems).toEqual([
      expect.stringMatching(/^profiles\.log-shipper: the policy's (init)?[cC]ontainers\[\d\]\.restartPolicyy: unknown field \(did you mean restartPolicy\?\)/),
      expect.stringMatching(/^profiles\.log-shipper: the policy's volumes\[0\]\.emptyDir\.medium: must be a string/),
    ]);
    expect(compilePolicy(sound, 'x', V136).ok).toBe(true);
  });

  it('per-pod overrides are variables that judge each annotation as the webhook does: the registry at a path boundary, quantities, requests against the final limits', () => {
    const policy = objects(TEST_CONFIG_YAML)[2]!;
    const vars = Object.fromEntries(specOf(policy).variables.map((v) => [v.name, v.expression]));
    expect(vars.o1Image).toContain('"sidecar-injector.io/log-shipper.image" in variables.annotations');
    expect(vars.o1Image).toContain('["registry.example.com/logging/"].exists(r,');
    expect(vars.o1Image).toContain('["/", ":", "@"]');
    expect(vars.o1cpuRequest).toContain('!quantity(variables.annotations["sidecar-injector.io/log-shipper.cpu-request"]).isGreaterThan(quantity(variables.o1cpuLimit1))');
    expect(vars.o1memoryLimit).toBe('variables.o1memoryLimit1 != "128Mi" && quantity(variables.o1memoryRequest).isGreaterThan(quantity(variables.o1memoryLimit1)) ? "128Mi" : variables.o1memoryLimit1');
    // The container reads them where it carries the fields.
    const patch = specOf(policy).mutations[0]!.jsonPatch.expression;
    expect(patch).toContain('"image": dyn(variables.o1Image)');
    expect(patch).toContain('"limits": dyn({"cpu": dyn(variables.o1cpuLimit), "memory": dyn(variables.o1memoryLimit)})');
  });

  it('v1 from 1.36, v1beta1 on 1.34 and 1.35, an error before', () => {
    expect(policyApiVersion({ major: 1, minor: 36 })).toBe('admissionregistration.k8s.io/v1');
    expect(policyApiVersion({ major: 1, minor: 37 })).toBe('admissionregistration.k8s.io/v1');
    expect(policyApiVersion({ major: 1, minor: 35 })).toBe('admissionregistration.k8s.io/v1beta1');
    expect(policyApiVersion({ major: 1, minor: 34 })).toBe('admissionregistration.k8s.io/v1beta1');
    expect(policyApiVersion({ major: 1, minor: 33 })).toBeUndefined();
    const old = compilePolicy(config, 'x', { major: 1, minor: 31 });
    expect(old.ok ? '' : old.problems[0]).toContain('needs Kubernetes 1.34 or later');
  });
});

describe('sidecar-injector policy', () => {
  it('prints YAML documents, or a List in JSON (the example config too); what it cannot compile is one line on stderr, exit 1', async () => {
    const dir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/policy-cli-`);
    const file = `${dir}/config.yaml`;
    (await import('node:fs')).writeFileSync(file, POLICY_YAML);
    const yaml = await runCli(['policy', '--config', file]);
    expect(yaml.code).toBe(0);
    expect(yaml.stdout.match(/^kind: /gm)).toHaveLength(8);
    const json = await runCli(['policy', '--config', file, '-o', 'json', '--name', 'logs', '--kube-version', '1.35']);
    const list = JSON.parse(json.stdout) as { kind: string; items: PolicyObject[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((o) => o.metadata.name)).toEqual(['logs-namespaces', 'logs-namespaces', 'logs', 'logs', 'logs-warn-namespaces', 'logs-warn-namespaces', 'logs-warn', 'logs-warn']);
    expect(list.items[0]!.apiVersion).toBe('admissionregistration.k8s.io/v1beta1');
    const example = await runCli(['policy', '--config', 'config/example.yaml']);
    expect(example.code).toBe(0);
    (await import('node:fs')).writeFileSync(`${dir}/partial.yaml`, 'defaultProfiles: [a]\nprofiles:\n  a:\n    containers: [{ name: a, image: a }]\n    overrides: { resources: true }\n');
    const refused = await runCli(['policy', '--config', `${dir}/partial.yaml`]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe('sidecar-injector policy: profiles.a.containers[0].resources: per-pod resource overrides compile only where the profile sets cpu and memory requests and limits (set them, or use the webhook)\n');
    const old = await runCli(['policy', '--config', file, '--kube-version', '1.30']);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain('needs Kubernetes 1.34 or later');
  });
});
