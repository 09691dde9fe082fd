/**
 * Policy mode proven in CI with Kubernetes' own admission code (issue 23):
 * the policies `policy` compiles are run by k8s.io/apiserver's
 * MutatingAdmissionPolicy and ValidatingAdmissionPolicy plugins (the Go
 * harness in test/policy-eval, from Debian's packages), and every pod they
 * admit is compared with the same pod through the webhook's pipeline, whose
 * patch the harness applies with the API server's JSON patch library. Over the
 * shared cases, fast-check pods and configs, and generated overrides: the same
 * pod out, refused by both or neither, the same kinds of warning. Where the
 * API server itself is needed (its defaulting, the ServiceAccount plugin, the
 * policies' validation) it is test/e2e/policy.e2e.ts, on a real 1.36.
 */
import { isDeepStrictEqual } from 'node:util';
import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { V1Pod } from '@kubernetes/client-node';
import { compilePolicy, type PolicyObject } from '../../src/core/policy.js';
import { mutate } from '../../src/core/mutate.js';
import { parseReview } from '../../src/core/review.js';
import type { CompiledConfig } from '../../src/core/config.js';
import { CEL_EDGE_CHARACTERS, celEdgeImage, celEdgeQuantity, celEdgeWish, config as generatedConfig, pod as generatedPod } from '../helpers/arbitraries.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { admissionReview } from '../helpers/fixtures.js';
import { chartConfig, overrideCases, POLICY_CASES } from '../helpers/policy-cases.js';
import { pod } from '../e2e/pods.js';
import { asEncoded, evaluate, namespaceObject, policyEvalBinary, type EvalResult } from '../helpers/policy-eval.js';
import { apiServerDefaults, serviceAccountPlugin } from '../fake-apiserver/admission-chain.js';
import { decodePatch } from '../helpers/patch-engine.js';
import { conditionsHold } from '../helpers/cel.js';
import { matchConditionsFor } from '../../src/core/match-conditions.js';

const V136 = { major: 1, minor: 36 };
/** 1.36 has native sidecars and matchConditions: what the webhook would be told by the cluster. */
const SERVER = { nativeSidecars: true, matchConditions: true };
const RUNS = Number(process.env.PROPERTY_RUNS ?? 100);
/** The Unicode property's seed (PROPERTY_SEED, as test/core/properties.test.ts). */
const SEED = Number(process.env.PROPERTY_SEED ?? 20261203);

/** Namespaces for every namespace rule: plain, labelled enabled or disabled, and excluded. */
const NAMESPACES: Record<string, Record<string, string>> = {
  plain: {},
  enabled: { 'sidecar-injector.io/injection': 'enabled' },
  disabled: { 'sidecar-injector.io/injection': 'disabled' },
  'kube-system': { 'sidecar-injector.io/injection': 'enabled' },
};
const NAMESPACE_NAMES = Object.keys(NAMESPACES);

interface Case {
  title: string;
  namespace: string;
  pod: V1Pod;
}

interface WebhookAnswer {
  patch?: unknown[];
  denied?: string;
  warnings: string[];
}

/** The pod a controller posts, as policies and webhooks see it: the API server's defaults, then the ServiceAccount plugin. */
function admitted(p: V1Pod, namespace: string): V1Pod {
  const body = structuredClone(p);
  body.metadata = { ...body.metadata, namespace };
  return serviceAccountPlugin(apiServerDefaults(body));
}

/**
 * Whether the API server calls the webhook for the pod, by the chart's webhook configuration: its
 * namespaceSelector (excluded namespaces; the two entries split by the `enabled` label), objectSelector (a pod
 * labelled inject=false, when pods may opt out) and, outside enabled namespaces, the matchConditions.
 */
function webhookCalled(config: CompiledConfig, c: Case): boolean {
  if (config.excludedNamespaces.has(c.namespace)) return false;
  if (config.config.allowPodOptOut && c.pod.metadata?.labels?.[config.keys.inject] === 'false') return false;
  return NAMESPACES[c.namespace]![config.keys.namespaceInjection] === 'enabled' || conditionsHold(matchConditionsFor(config), c.pod);
}

/** The webhook's whole pipeline for one pod it is sent (parse, decide, inject, final-pod check, response). */
function webhook(config: CompiledConfig, c: Case): WebhookAnswer {
  if (!webhookCalled(config, c)) return { patch: [], warnings: [] };
  const parsed = parseReview(admissionReview(c.pod, { namespace: c.namespace }));
  if (!parsed.ok) throw new Error(parsed.error);
  const r = mutate(parsed.review, { config, namespaceLabels: (ns) => NAMESPACES[ns], server: SERVER });
  if (!r.ok) throw new Error(`${c.title}: ${r.error}`);
  const { response } = r.review;
  const warnings = response.warnings ?? [];
  if (!response.allowed) return { denied: response.status?.message ?? '', warnings };
  return { patch: response.patch ? decodePatch(response.patch) : [], warnings };
}

function policyObjects(config: CompiledConfig): PolicyObject[] {
  const r = compilePolicy(config, 'sidecar-injector', V136);
  if (!r.ok) throw new Error(`the config does not compile to a policy:\n${r.problems.join('\n')}`);
  return r.objects;
}

interface Outcome {
  c: Case;
  webhook: WebhookAnswer;
  policy: EvalResult;
}

async function bothModes(config: CompiledConfig, given: Case[], objects = policyObjects(config)): Promise<Outcome[]> {
  const encoded = await asEncoded(given.map((c) => c.pod));
  const cases = given.map((c, i) => ({ ...c, pod: encoded[i]! }));
  const answers = cases.map((c) => webhook(config, c));
  const results = await evaluate({
    objects,
    namespaces: Object.entries(NAMESPACES).map(([n, labels]) => namespaceObject(n, labels)),
    cases: cases.map((c, i) => ({ namespace: c.namespace, pod: c.pod, ...(answers[i]!.denied === undefined ? { webhookPatch: answers[i]!.patch } : {}) })),
  });
  return cases.map((c, i) => ({ c, webhook: answers[i]!, policy: results[i]! }));
}

/**
 * Warnings by kind. The policy's are ValidatingAdmissionPolicy messages (the API server prefixes them with
 * the policy's names and cannot put the pod's own words in them); override refusals are the webhook's only
 * (docs/design-notes.md).
 */
function warningKinds(warnings: string[], from: 'webhook' | 'policy'): string[] {
  const kinds = warnings.flatMap((w): string[] => {
    // `s`: the webhook's warning quotes the pod's value, which may hold a line break. Also an override for a
    // container that is not injected ("ignored").
    if (/override .* (refused|ignored)/s.test(w)) return from === 'webhook' ? [] : ['override refused'];
    if (/unknown sidecar profile/.test(w)) return ['unknown profile'];
    if (/sidecar injection (skipped|denied)/.test(w)) return ['not injected'];
    if (/pods may not opt out here/.test(w)) return ['opt-out ignored'];
    return [w];
  });
  return [...new Set(kinds)].sort();
}

const isInjected = (p: V1Pod | undefined) => p?.metadata?.annotations?.['sidecar-injector.io/status'] !== undefined;

/** The same outcome through the policies as through the webhook; returns whether the pod was injected. */
function expectSameOutcome({ c, webhook: w, policy }: Outcome): boolean {
  const at = `${c.title} (namespace ${c.namespace})`;
  if (w.denied !== undefined) {
    expect({ at, refused: policy.error ?? 'admitted' }).toEqual({ at, refused: expect.stringContaining('sidecar injection denied') });
    return false;
  }
  expect({ at, error: policy.error, webhookError: policy.webhookError }).toEqual({ at, error: undefined, webhookError: undefined });
  // The API server defaults both before it stores them (its defaulting is not in Debian's packages: the fake's table).
  expect({ at, pod: apiServerDefaults(policy.pod!) }).toEqual({ at, pod: apiServerDefaults(policy.webhook!) });
  expect({ at, warnings: warningKinds(policy.warnings, 'policy') }).toEqual({ at, warnings: warningKinds(w.warnings, 'webhook') });
  return isInjected(policy.pod);
}

beforeAll(() => {
  // Minutes the first time on a machine (the Go build, scripts/tools.mjs); then cached.
  policyEvalBinary();
}, 15 * 60_000);

describe('policy mode through Kubernetes\' own admission code (k8s.io/apiserver)', () => {
  const chart = compile(stringify(chartConfig()));

  it('the shared cases: the same pods as the webhook, and injected where they should be', async () => {
    const cases = POLICY_CASES.map(([title, p, enabled]) => ({ title, namespace: enabled ? 'enabled' : 'plain', pod: admitted(p, enabled ? 'enabled' : 'plain') }));
    const outcomes = await bothModes(chart, cases);
    expect(outcomes.map((o) => [o.c.title, expectSameOutcome(o)])).toEqual(POLICY_CASES.map(([title, , , injected]) => [title, injected]));
  });

  it('a pod that does not ask, outside namespaces labelled enabled, costs no mutation at all (matchConditions keep it out)', async () => {
    const quiet = [pod('', 'plain'), pod('', 'other', { labels: { team: 'web' }, annotations: { 'example.com/note': 'x' } })];
    const asks = pod('', 'asks', { annotations: { 'sidecar-injector.io/inject': 'true' } });
    const outcomes = await bothModes(chart, [...quiet, asks].map((p, i) => ({ title: `pod ${i}`, namespace: 'plain', pod: admitted(p, 'plain') })));
    // By the mutating plugin's own counter (apiserver_mutating_admission_policy_check_total). A pod that asks is
    // mutated once: the plugin re-invokes an IfNeeded policy after any policy of its ran (dispatcher.go marks
    // every mutation dirty, even an empty patch), and the not-injected matchCondition keeps the injected pod out.
    expect(outcomes.map((o) => o.policy.policyMutations)).toEqual([0, 0, 1]);
    expect(outcomes.map((o) => expectSameOutcome(o))).toEqual([false, false, true]);
  });

  it('a pod already injected gets nothing more (the policy runs again on reinvocation; the status annotation guards it)', async () => {
    const [first] = await bothModes(chart, [{ title: 'first', namespace: 'plain', pod: admitted(POLICY_CASES[0]![1], 'plain') }]);
    const injected = first!.policy.pod!;
    expect(isInjected(injected)).toBe(true);
    const [again] = await bothModes(chart, [{ title: 'again', namespace: 'plain', pod: injected }]);
    expect(again!.policy.pod).toEqual(injected);
    expect(expectSameOutcome(again!)).toBe(true);
  });

  it.each([
    ['the chart\'s config', () => chart],
    ['the tests\' config (a native sidecar profile with an init container, resource overrides)', () => compile(TEST_CONFIG_YAML)],
  ])('fast-check pods in every kind of namespace, %s', async (_, config) => {
    const pods = fc.sample(generatedPod, { seed: 20261130, numRuns: 3 * RUNS });
    const cases = pods.map((p, i) => {
      // The API server refuses ephemeral containers on create.
      if (p.spec) delete p.spec.ephemeralContainers;
      const namespace = NAMESPACE_NAMES[i % NAMESPACE_NAMES.length]!;
      return { title: `generated pod ${i}: ${JSON.stringify(p)}`, namespace, pod: { ...p, metadata: { ...p.metadata, namespace } } };
    });
    const injected = (await bothModes(config(), cases)).filter(expectSameOutcome).length;
    // Enough of them injected for the comparison to mean something.
    expect(injected).toBeGreaterThan(cases.length / 10);
  }, 120_000);

  it('generated overrides on the chart\'s log shipper (images by registry, quantities in every form)', async () => {
    const cases = overrideCases(20261131, 2 * RUNS).map((annotations, i) => ({
      title: `overrides ${JSON.stringify(annotations)}`,
      namespace: 'plain',
      pod: admitted({ ...POLICY_CASES[0]![1], metadata: { ...POLICY_CASES[0]![1].metadata, name: `ov-${i}`, annotations: { 'sidecar-injector.io/inject': 'true', ...annotations } } }, 'plain'),
    }));
    expect((await bothModes(chart, cases)).every(expectSameOutcome)).toBe(true);
  }, 120_000);

  describe('one meaning for every string (src/core/cel-strings.ts): the webhook reads as CEL reads', () => {
    const INJECT = 'sidecar-injector.io/inject';
    const IMAGE = 'sidecar-injector.io/log-shipper.image';
    /** Every character outside printable ASCII as \u{…}, so that a failure shows which one it was. */
    const visible = (v: unknown) => JSON.stringify(v).replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
    const withMeta = (i: number, namespace: string, labels: Record<string, string>, annotations: Record<string, string>): Case => {
      const base = POLICY_CASES[0]![1];
      return {
        title: `pod ${i}: labels ${visible(labels)}, annotations ${visible(annotations)}`,
        namespace,
        pod: admitted({ ...base, metadata: { name: `u-${i}`, labels: { ...base.metadata?.labels, ...labels }, annotations } }, namespace),
      };
    };
    const shipperOf = (p: V1Pod | undefined) => [...(p?.spec?.initContainers ?? []), ...(p?.spec?.containers ?? [])].find((c) => c.name === 'log-shipper');
    const imageOf = (p: V1Pod | undefined) => shipperOf(p)?.image;

    it('each edge character around a wish, a profile list and an image override: the same pods, and trimmed as Go\'s unicode.IsSpace says', async () => {
      const cases = CEL_EDGE_CHARACTERS.flatMap((ch, i) => [
        withMeta(4 * i, 'plain', {}, { [INJECT]: `${ch}TRUE${ch}` }),
        withMeta(4 * i + 1, 'plain', {}, { [INJECT]: `${ch}log-shipper${ch},${ch}` }),
        withMeta(4 * i + 2, 'plain', {}, { [INJECT]: 'true', [IMAGE]: `${ch}cr.fluentbit.io/fluent/fluent-bit:3.3.0${ch}` }),
        withMeta(4 * i + 3, 'enabled', {}, { [INJECT]: `${ch}FaLsE${ch}` }),
      ]);
      const outcomes = await bothModes(chart, cases);
      const injected = outcomes.map(expectSameOutcome);
      const image = outcomes.filter((_, k) => k % 4 === 2).map((o) => imageOf(o.policy.pod));
      // What Kubernetes' CEL trims (cel-go ext/strings.go: strings.TrimSpace), and so what the webhook trims now.
      const space = (ch: string) => /^\p{White_Space}$/u.test(ch);
      expect(CEL_EDGE_CHARACTERS.map((ch, i) => [visible(ch), injected[4 * i], injected[4 * i + 1], injected[4 * i + 3]])).toEqual(
        // ",TRUE," is a profile list of one unknown name; ",log-shipper,,," still asks for log-shipper.
        CEL_EDGE_CHARACTERS.map((ch) => [visible(ch), space(ch), space(ch) || ch === ',', !space(ch)]),
      );
      expect(image).toEqual(CEL_EDGE_CHARACTERS.map((ch) => (space(ch) ? 'cr.fluentbit.io/fluent/fluent-bit:3.3.0' : 'cr.fluentbit.io/fluent/fluent-bit:3.2.2')));
    });

    it('override quantities as resource.ParseQuantity reads them (src/core/quantity.ts): rounded up to nano, huge exponents, int32 exponents, the binary cap', async () => {
      const over = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [`sidecar-injector.io/log-shipper.${k}`, v]));
      // With what the API server stores: the override, in Quantity's canonical form (the harness encodes the pod).
      const given: [Record<string, string>, { limits: Record<string, string>; requests: Record<string, string> } | 'profile'][] = [
        // 1e400 is a quantity to Kubernetes (10^400, not capped), not Infinity.
        [{ 'memory-limit': '1e400' }, { limits: { memory: '10e399' }, requests: {} }],
        // Both round up to 100000001n: the request equals the limit.
        [{ 'cpu-limit': '0.1000000001', 'cpu-request': '0.1000000002' }, { limits: { cpu: '100000001n' }, requests: { cpu: '100000001n' } }],
        [{ 'cpu-limit': '1n', 'cpu-request': '1e-10' }, { limits: { cpu: '1n' }, requests: { cpu: '1e-9' } }],
        [{ 'cpu-limit': '1n', 'cpu-request': '0.0000000001' }, { limits: { cpu: '1n' }, requests: { cpu: '1n' } }],
        [{ 'cpu-limit': '1n', 'cpu-request': '1.1n' }, 'profile'],
        // 8Ei and 9Ei are both capped at max int64.
        [{ 'memory-limit': '8Ei', 'memory-request': '9Ei' }, { limits: { memory: '9223372036854775807' }, requests: { memory: '9223372036854775807' } }],
        // The exponent is truncated to int32: 1e4294967297 is 10, which is above 1 (the limit stands).
        [{ 'cpu-limit': '1', 'cpu-request': '1e4294967297' }, { limits: { cpu: '1' }, requests: {} }],
        // An exponent beyond int64 is no quantity (ErrSuffix).
        [{ 'memory-limit': '1e99999999999999999999' }, 'profile'],
      ];
      const cases = given.map(([o], i) => withMeta(1000 + i, 'plain', {}, { [INJECT]: 'true', ...over(o) }));
      const outcomes = await bothModes(chart, cases);
      expect(outcomes.map(expectSameOutcome)).toEqual(given.map(() => true));
      const profile = chart.config.profiles['log-shipper']!.containers[0]!.resources!;
      expect(outcomes.map((o) => shipperOf(o.policy.pod)?.resources)).toEqual(
        given.map(([, r]) => (r === 'profile' ? profile : { limits: { ...profile.limits, ...r.limits }, requests: { ...profile.requests, ...r.requests } })),
      );
    });

    it(`fast-check Unicode in the inject label and annotation, profile lists and override values (seed ${SEED}): the same pods, refused and warned alike`, async () => {
      // The label (which wins) on one pod in four, the annotation on four in five. The API server's validation
      // takes only [A-Za-z0-9_.-] in a label value (so there only ASCII case can differ); neither the harness
      // nor the webhook's pipeline validates, so labels get any string here too.
      const meta = fc.record({
        label: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: celEdgeWish }),
        annotation: fc.option(celEdgeWish, { freq: 5, nil: undefined }),
        // Each override on about half the pods (the exporter allows none; it is rarely injected).
        overrides: fc.record(
          {
            [IMAGE]: celEdgeImage,
            ...Object.fromEntries(['cpu-request', 'cpu-limit', 'memory-request', 'memory-limit'].map((k) => [`sidecar-injector.io/log-shipper.${k}`, celEdgeQuantity])),
            'sidecar-injector.io/exporter.image': celEdgeImage,
          },
          { requiredKeys: [] },
        ),
      });
      const cases = fc.sample(meta, { seed: SEED, numRuns: 3 * RUNS }).map(({ label, annotation, overrides }, i) =>
        withMeta(i, NAMESPACE_NAMES[i % NAMESPACE_NAMES.length]!, label === undefined ? {} : { [INJECT]: label }, { ...overrides, ...(annotation === undefined ? {} : { [INJECT]: annotation }) }),
      );
      const outcomes = await bothModes(chart, cases);
      const injected = outcomes.filter(expectSameOutcome).length;
      // Enough of them injected (and enough not), and overridden, for the comparison to mean something.
      const profile = chart.config.profiles['log-shipper']!.containers[0]!;
      const overridden = outcomes.map((o) => shipperOf(o.policy.pod)).filter((c) => c && (c.image !== profile.image || !isDeepStrictEqual(c.resources, profile.resources)));
      expect(injected).toBeGreaterThan(cases.length / 10);
      expect(injected).toBeLessThan(cases.length * 0.9);
      expect(overridden.length).toBeGreaterThan(cases.length / 30);
    }, 120_000);
  });

  it('fast-check configs, each with fast-check pods (refused configs say why, and are few)', async () => {
    const configs = fc.sample(generatedConfig, { seed: 20261201, numRuns: Math.ceil(RUNS / 3) });
    const pods = fc.sample(generatedPod, { seed: 20261202, numRuns: configs.length * 12 });
    let compiled = 0;
    let injected = 0;
    for (const [n, config] of configs.entries()) {
      const r = compilePolicy(config, 'sidecar-injector', V136);
      if (!r.ok) {
        expect(r.problems.length).toBeGreaterThan(0);
        continue;
      }
      compiled += 1;
      const cases = pods.slice(n * 12, n * 12 + 12).map((p, i) => {
        if (p.spec) delete p.spec.ephemeralContainers;
        const namespace = NAMESPACE_NAMES[i % NAMESPACE_NAMES.length]!;
        return { title: `config ${n} ${stringify(config.config)}\npod ${i}: ${JSON.stringify(p)}`, namespace, pod: { ...p, metadata: { ...p.metadata, namespace } } };
      });
      injected += (await bothModes(config, cases, r.objects)).filter(expectSameOutcome).length;
    }
    expect(compiled).toBeGreaterThan(configs.length / 2);
    expect(injected).toBeGreaterThan(0);
  }, 300_000);

  it('onConflict: deny — a conflicting pod is refused by both; the others are injected as the webhook injects them', async () => {
    const deny = compile(stringify({ ...chartConfig(), onConflict: 'deny' }));
    const conflicting = admitted(POLICY_CASES[0]![1], 'plain');
    conflicting.spec!.containers.push({ name: 'log-shipper', image: 'mine:1' });
    const outcomes = await bothModes(deny, [
      { title: 'conflicting', namespace: 'plain', pod: conflicting },
      { title: 'fine', namespace: 'plain', pod: admitted(POLICY_CASES[0]![1], 'plain') },
    ]);
    expect(outcomes.map(expectSameOutcome)).toEqual([false, true]);
    expect(outcomes[0]!.webhook.denied).toContain('conflict: container name "log-shipper" is used twice');
  });
});

describe('what the harness catches (so that its silence means something)', () => {
  const chart = compile(stringify(chartConfig()));
  const objects = () => structuredClone(policyObjects(chart));
  const asks: Case = { title: 'asks', namespace: 'plain', pod: admitted(POLICY_CASES[0]![1], 'plain') };
  const patchOf = (o: PolicyObject) => (o.spec as { mutations: { jsonPatch: { expression: string } }[] }).mutations[0]!.jsonPatch;

  it('a misspelt field in an Object{} initializer: accepted as a policy, then every pod it matches fails', async () => {
    const broken = objects();
    const policy = broken.find((o) => o.kind === 'MutatingAdmissionPolicy' && o.metadata.name === 'sidecar-injector')!;
    expect(patchOf(policy).expression).toContain('"restartPolicy": dyn(');
    patchOf(policy).expression = patchOf(policy).expression.replace('"restartPolicy": dyn(', '"restartPolicyy": dyn(');
    const [o] = await bothModes(chart, [asks], broken);
    expect(o!.policy.error).toMatch(/restartPolicyy/);
  });

  it('an expression that does not type-check fails the pods the policy matches, with the compile error', async () => {
    const broken = objects();
    const policy = broken.find((o) => o.kind === 'MutatingAdmissionPolicy' && o.metadata.name === 'sidecar-injector')!;
    const variables = (policy.spec as { variables: { name: string; expression: string }[] }).variables;
    variables[0]!.expression = `${variables[0]!.expression} + 1`;
    const [o] = await bothModes(chart, [asks], broken);
    expect(o!.policy.error).toMatch(/compil|no matching overload|found no matching/i);
  });

  it('a webhook patch that the policy does not match shows as a different pod', async () => {
    const [o] = await bothModes(chart, [asks]);
    const w = webhook(chart, asks);
    const changed = await evaluate({
      objects: policyObjects(chart),
      namespaces: [namespaceObject('plain')],
      cases: [{ namespace: 'plain', pod: asks.pod, webhookPatch: [...w.patch!, { op: 'add', path: '/metadata/labels/extra', value: 'x' }] }],
    });
    expect(apiServerDefaults(changed[0]!.webhook!)).not.toEqual(apiServerDefaults(o!.policy.pod!));
    expect(apiServerDefaults(o!.policy.webhook!)).toEqual(apiServerDefaults(o!.policy.pod!));
  });
});
