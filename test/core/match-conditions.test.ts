/**
 * The generated matchConditions, evaluated by a real CEL implementation
 * (@bufbuild/cel) against generated pods and configs (fast-check, seeded):
 * for every pod the rules (decide) could inject outside a namespace labelled
 * `enabled`, every condition holds, so the API server sends it. And they do
 * keep pods out: otherwise `true` would pass.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { CompiledConfig } from '../../src/core/config.js';
import { decide } from '../../src/core/decide.js';
import { conditionsForEntry, matchConditionsFor, type MatchCondition } from '../../src/core/match-conditions.js';
import { selectorMatches, type LabelSelector } from '../../src/core/selector.js';
import { conditionsHold } from '../helpers/cel.js';

const SEED = Number(process.env.PROPERTY_SEED ?? 20261129);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 1000);

const PREFIXES = ['sidecar-injector.io', 'inject.example.com'];
const labelKey = (prefix: string) => fc.constantFrom(`${prefix}/inject`, 'app', 'team', 'example.com/tier', 'a.b/c~d', 'x');
const value = fc.constantFrom('true', 'false', 'FALSE', ' false ', '', 'log-shipper', 'nope', 'log-shipper,nope', 'web', 'a.b');
const map = (prefix: string) => fc.option(fc.dictionary(labelKey(prefix), value, { maxKeys: 3 }), { nil: undefined });

const selector = (prefix: string) =>
  fc.record(
    {
      matchLabels: fc.dictionary(labelKey(prefix), value, { maxKeys: 2 }),
      matchExpressions: fc.array(
        fc.oneof(
          fc.record({ key: labelKey(prefix), operator: fc.constantFrom('In', 'NotIn'), values: fc.array(value, { minLength: 1, maxLength: 3 }) }),
          fc.record({ key: labelKey(prefix), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
        ),
        { maxLength: 2 },
      ),
    },
    { requiredKeys: [] },
  );

const world = fc.constantFrom(...PREFIXES).chain((prefix) =>
  fc.record({
    config: fc
      .record({
        annotationPrefix: fc.constant(prefix),
        policy: fc.constantFrom('opt-in', 'opt-in', 'opt-in', 'opt-out'),
        allowPodOptOut: fc.boolean(),
        alwaysInjectSelector: fc.array(selector(prefix), { maxLength: 2 }),
        neverInjectSelector: fc.array(selector(prefix), { maxLength: 1 }),
      })
      .map((c) => parseConfigText(stringify({ ...c, defaultProfiles: ['log-shipper'], profiles: { 'log-shipper': { containers: [{ name: 'agent', image: 'agent:1' }] } } }), 'gen.yaml'))
      .filter((r) => r.ok)
      .map((r) => (r.ok ? r.compiled : (undefined as never))) as fc.Arbitrary<CompiledConfig>,
    pod: fc.record({ labels: map(prefix), annotations: map(prefix) }).map(({ labels, annotations }) => {
      const metadata: V1Pod['metadata'] = { generateName: 'web-', namespace: 'shop' };
      if (labels) metadata.labels = labels;
      if (annotations) metadata.annotations = annotations;
      return { apiVersion: 'v1', kind: 'Pod', metadata, spec: { containers: [{ name: 'web', image: 'nginx' }] } } as V1Pod;
    }),
    namespaceLabels: fc.constantFrom<Record<string, string> | undefined>(undefined, {}, { [`${prefix}/injection`]: 'disabled' }),
  }),
);

/**
 * Issue 22: webhook configurations as users write them. Entries with random
 * namespaceSelectors and objectSelectors over a small vocabulary that
 * includes the namespace label and `enabled`; namespaces with random labels.
 * Whatever entry selects a pod the rules inject, the conditions that entry
 * carries must let the pod through. (With round 3's rule, "conditions unless
 * the selector requires enabled", a one-entry configuration fails this.)
 */
const NS_LABEL = 'sidecar-injector.io/injection';
const nsKey = fc.constantFrom(NS_LABEL, NS_LABEL, 'team', 'kubernetes.io/metadata.name');
const nsValue = fc.constantFrom('enabled', 'disabled', 'x', 'shop');
const nsSelector: fc.Arbitrary<LabelSelector> = fc.record(
  {
    matchLabels: fc.dictionary(nsKey, nsValue, { maxKeys: 1 }),
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({ key: nsKey, operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.uniqueArray(nsValue, { minLength: 1, maxLength: 3 }) }),
        fc.record({ key: nsKey, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const) }),
      ),
      { maxLength: 2 },
    ),
  },
  { requiredKeys: [] },
);
const objSelector: fc.Arbitrary<LabelSelector> = fc.record(
  {
    matchExpressions: fc.array(fc.record({ key: fc.constantFrom('app', 'sidecar-injector.io/inject'), operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.constant(['web', 'false']) }), { maxLength: 1 }),
  },
  { requiredKeys: [] },
);
const entries = fc.array(fc.record({ namespaceSelector: fc.option(nsSelector, { nil: undefined }), objectSelector: fc.option(objSelector, { nil: undefined }) }), { minLength: 1, maxLength: 3 });
const namespaceLabels: fc.Arbitrary<Record<string, string>> = fc.record({ [NS_LABEL]: nsValue, team: nsValue }, { requiredKeys: [] });
const optIn = (() => {
  const r = parseConfigText(
    stringify({
      alwaysInjectSelector: [{ matchLabels: { tier: 'logging' } }],
      neverInjectSelector: [{ matchLabels: { app: 'batch' } }],
      defaultProfiles: ['log-shipper'],
      profiles: { 'log-shipper': { containers: [{ name: 'agent', image: 'agent:1' }] } },
    }),
    'c.yaml',
  );
  if (!r.ok) throw new Error(r.errors.join());
  return r.compiled;
})();
const podOf = (labels: Record<string, string> | undefined, annotations: Record<string, string> | undefined): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-', namespace: 'shop', ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
});
/** Injected without asking and without alwaysInjectSelector: only rule 7 (the namespace) can have done it. */
const readWishless = (pod: V1Pod) => !pod.metadata?.labels?.['sidecar-injector.io/inject'] && !pod.metadata?.annotations?.['sidecar-injector.io/inject'] && pod.metadata?.labels?.tier !== 'logging';
const podLabels = fc.option(fc.dictionary(fc.constantFrom('app', 'tier', 'sidecar-injector.io/inject'), fc.constantFrom('web', 'batch', 'logging', 'true', 'false'), { maxKeys: 2 }), { nil: undefined });
const podAnnotations = fc.option(fc.dictionary(fc.constant('sidecar-injector.io/inject'), fc.constantFrom('true', 'false', 'log-shipper')), { nil: undefined });

/** Every entry that selects the namespace and the pod, with the conditions the writer gives it, lets the injected pod through. */
function injectedPodsGetThrough(give: (selector: LabelSelector | undefined) => readonly MatchCondition[], seen = { checked: 0, byNamespace: 0 }) {
  return fc.property(entries, namespaceLabels, podLabels, podAnnotations, (hooks, nsLabels, labels, annotations) => {
    const pod = podOf(labels, annotations);
    if (decide(pod, 'shop', nsLabels, optIn).action !== 'inject') return;
    const ns = { 'kubernetes.io/metadata.name': 'shop', ...nsLabels };
    for (const w of hooks) {
      if (!selectorMatches(w.namespaceSelector ?? {}, ns) || !selectorMatches(w.objectSelector ?? {}, labels ?? {})) continue;
      seen.checked += 1;
      if (readWishless(pod)) seen.byNamespace += 1;
      expect(conditionsHold([...give(w.namespaceSelector)], pod)).toBe(true);
    }
  });
}

describe('matchConditions on the entries of any webhook configuration (issue 22)', () => {
  const conditions = matchConditionsFor(optIn);
  it('never keep out a pod the rules inject, whatever entry selects it (CEL, fast-check)', () => {
    const seen = { checked: 0, byNamespace: 0 };
    fc.assert(injectedPodsGetThrough((selector) => conditionsForEntry(selector, conditions, NS_LABEL), seen), { seed: SEED, numRuns: RUNS });
    // Not vacuous: many injected pods were checked, some injected only because their namespace asks.
    expect(seen.checked).toBeGreaterThan(RUNS / 10);
    expect(seen.byNamespace).toBeGreaterThan(RUNS / 50);
  });

  it('round 3\'s rule (conditions unless the selector requires enabled) fails the same property', () => {
    const requiresEnabled = (s: LabelSelector | undefined) =>
      s?.matchLabels?.[NS_LABEL] === 'enabled' || (s?.matchExpressions ?? []).some((r) => r.key === NS_LABEL && r.operator === 'In' && (r.values ?? []).every((v) => v === 'enabled'));
    expect(() => fc.assert(injectedPodsGetThrough((selector) => (requiresEnabled(selector) ? [] : conditions)), { seed: SEED, numRuns: RUNS })).toThrow();
  });
});

describe('matchConditions', () => {
  it('send every pod the rules could inject outside an enabled namespace, and keep some out (CEL, fast-check)', () => {
    let keptOut = 0;
    let sent = 0;
    fc.assert(
      fc.property(world, ({ config, pod, namespaceLabels }) => {
        const conditions = matchConditionsFor(config);
        expect(conditions.length).toBeLessThanOrEqual(64);
        const sends = conditionsHold(conditions, pod);
        if (decide(pod, 'shop', namespaceLabels, config).action === 'inject') expect(sends).toBe(true);
        if (sends) sent += 1;
        else keptOut += 1;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(keptOut).toBeGreaterThan(RUNS / 10);
    expect(sent).toBeGreaterThan(RUNS / 10);
  });

  it('opt-out has none: every pod is sent', () => {
    const r = parseConfigText('policy: opt-out', 'c.yaml');
    expect(r.ok && matchConditionsFor(r.compiled)).toEqual([]);
  });

  it('a pod with no labels and no annotations maps is kept out under opt-in, without a CEL error', () => {
    const r = parseConfigText('alwaysInjectSelector: [{ matchExpressions: [{ key: team, operator: NotIn, values: [a] }] }]\nneverInjectSelector: [{ matchLabels: { x: y } }]', 'c.yaml');
    if (!r.ok) throw new Error(r.errors.join());
    const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-' }, spec: { containers: [] } };
    // NotIn selects a pod without the label, as in Kubernetes: rule 6 injects it, so it is sent.
    expect(conditionsHold(matchConditionsFor(r.compiled), bare)).toBe(true);
    const plain = parseConfigText('', 'c.yaml');
    expect(plain.ok && conditionsHold(matchConditionsFor(plain.compiled), bare)).toBe(false);
  });
});
