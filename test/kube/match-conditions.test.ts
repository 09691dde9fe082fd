import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { canCarryConditions, matchConditionsFor, selectsOnlyEnabledNamespaces, type MatchCondition } from '../../src/core/match-conditions.js';
import type { LabelSelector } from '../../src/core/selector.js';
import { matchConditionsPatch, MatchConditionsWriter, unsplitEntries, type MatchConditionsResult } from '../../src/kube/match-conditions.js';
import { FakeApiServer, type FakeOptions } from '../fake-apiserver/server.js';
import { compile } from '../helpers/configs.js';
import { quietLogger, startFake, until } from './helpers.js';

const NAME = 'sidecar-injector';
const LABEL = 'sidecar-injector.io/injection';

/** The chart's two entries: namespaces labelled enabled (every pod), and the rest (pods the conditions let through). */
function webhookConfiguration() {
  const hook = (name: string, operator: 'In' | 'NotIn') => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    reinvocationPolicy: 'IfNeeded',
    clientConfig: { service: { name: NAME, namespace: 'sidecar-injector', path: '/mutate', port: 443 } },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
    namespaceSelector: {
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn' as const, values: ['kube-system', 'sidecar-injector'] },
        { key: LABEL, operator, values: ['enabled'] },
      ],
    },
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: NAME },
    webhooks: [hook('namespaces.pods.sidecar-injector.io', 'In'), hook('pods.sidecar-injector.io', 'NotIn')],
  };
}

const OPT_IN = matchConditionsFor(compile('alwaysInjectSelector: [{ matchLabels: { tier: logging } }]'));

describe('matchConditionsPatch', () => {
  const hooks = webhookConfiguration().webhooks;
  it('gives the conditions to the entry for other namespaces only, guarded by a test of its name', () => {
    expect(canCarryConditions(hooks[0]!.namespaceSelector as LabelSelector, LABEL)).toBe(false);
    expect(canCarryConditions(hooks[1]!.namespaceSelector as LabelSelector, LABEL)).toBe(true);
    expect(matchConditionsPatch(hooks, OPT_IN, LABEL)).toEqual([
      { op: 'test', path: '/webhooks/1/name', value: 'pods.sidecar-injector.io' },
      { op: 'add', path: '/webhooks/1/matchConditions', value: OPT_IN },
    ]);
  });

  it('writes nothing when they are in place, and removes them when none are wanted (opt-out)', () => {
    const withConditions = [hooks[0]!, { ...hooks[1]!, matchConditions: OPT_IN }];
    expect(matchConditionsPatch(withConditions, OPT_IN, LABEL)).toEqual([]);
    expect(matchConditionsPatch(withConditions, [], LABEL)).toEqual([
      { op: 'test', path: '/webhooks/1/name', value: 'pods.sidecar-injector.io' },
      { op: 'remove', path: '/webhooks/1/matchConditions' },
    ]);
  });
});

describe('which entries may carry conditions (issue 22)', () => {
  const expr = (operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist', values?: string[]): LabelSelector => ({ matchExpressions: [{ key: LABEL, operator, ...(values ? { values } : {}) }] });
  it.each<[string, LabelSelector | undefined, boolean]>([
    ['no selector', undefined, false],
    ['an empty selector', {}, false],
    ['a selector on other labels only', { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, false],
    ['In [enabled]', expr('In', ['enabled']), false],
    ['In [enabled, x]', expr('In', ['enabled', 'x']), false],
    ['Exists', expr('Exists'), false],
    ['NotIn [disabled]', expr('NotIn', ['disabled']), false],
    ['matchLabels enabled', { matchLabels: { [LABEL]: 'enabled' } }, false],
    ['NotIn [enabled]', expr('NotIn', ['enabled']), true],
    ['NotIn [enabled, disabled]', expr('NotIn', ['disabled', 'enabled']), true],
    ['DoesNotExist', expr('DoesNotExist'), true],
    ['In [disabled, x]', expr('In', ['disabled', 'x']), true],
    ['matchLabels disabled', { matchLabels: { [LABEL]: 'disabled' } }, true],
    ['Exists and NotIn [enabled] with other keys', { matchLabels: { team: 'a' }, matchExpressions: [{ key: LABEL, operator: 'Exists' }, { key: LABEL, operator: 'NotIn', values: ['enabled'] }] }, true],
  ])('%s', (_what, selector, carries) => {
    expect(canCarryConditions(selector, LABEL)).toBe(carries);
  });

  it('only entries that can select other namespaces as well are worth splitting', () => {
    expect(selectsOnlyEnabledNamespaces(expr('In', ['enabled']), LABEL)).toBe(true);
    expect(selectsOnlyEnabledNamespaces({ matchLabels: { [LABEL]: 'enabled' } }, LABEL)).toBe(true);
    expect(selectsOnlyEnabledNamespaces(expr('In', ['enabled', 'x']), LABEL)).toBe(false);
    expect(selectsOnlyEnabledNamespaces(expr('Exists'), LABEL)).toBe(false);
    expect(selectsOnlyEnabledNamespaces(undefined, LABEL)).toBe(false);
    const one = { name: 'one.example.com', namespaceSelector: {} };
    expect(unsplitEntries([...webhookConfiguration().webhooks, one], OPT_IN, LABEL).map((w) => w.name)).toEqual(['one.example.com']);
    expect(unsplitEntries([one], [], LABEL)).toEqual([]);
  });

  it('a one-entry configuration gets no conditions, and conditions found on it are removed', () => {
    const one = { name: 'pods.example.com', namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn' as const, values: ['kube-system'] }] } };
    expect(matchConditionsPatch([one], OPT_IN, LABEL)).toEqual([]);
    expect(matchConditionsPatch([{ ...one, matchConditions: OPT_IN }], OPT_IN, LABEL)).toEqual([
      { op: 'test', path: '/webhooks/0/name', value: 'pods.example.com' },
      { op: 'remove', path: '/webhooks/0/matchConditions' },
    ]);
  });
});

describe('MatchConditionsWriter against the fake API server', () => {
  let fake: FakeApiServer | undefined;
  const writers: MatchConditionsWriter[] = [];
  afterEach(async () => {
    for (const w of writers.splice(0)) w.stop();
    await fake?.stop();
    fake = undefined;
  });

  async function setup(opts: FakeOptions = {}, configuration: Record<string, unknown> = webhookConfiguration(), logger = quietLogger) {
    const started = await startFake(opts);
    fake = started.fake;
    fake.put('mutatingwebhookconfigurations', configuration);
    const results: MatchConditionsResult[] = [];
    let desired: MatchCondition[] = OPT_IN;
    const writer = new MatchConditionsWriter({
      client: started.client,
      name: NAME,
      logger,
      onResult: (r) => results.push(r),
      desired: () => ({ conditions: desired, namespaceLabel: LABEL, revision: 'r1' }),
      backoffInitialMs: 50,
    });
    writers.push(writer);
    const stored = () => (fake!.get('mutatingwebhookconfigurations', NAME) as ReturnType<typeof webhookConfiguration> & { webhooks: { matchConditions?: MatchCondition[] }[] }).webhooks;
    return { writer, results, stored, set: (c: MatchCondition[]) => (desired = c) };
  }

  it('writes them, then finds them in place; a new config replaces them; opt-out removes them', async () => {
    const { writer, results, stored, set } = await setup();
    writer.sync();
    await until('written', () => results.includes('patched'));
    expect(stored()[0]!.matchConditions).toBeUndefined();
    expect(stored()[1]!.matchConditions).toEqual(OPT_IN);
    writer.sync();
    await until('checked', () => results.includes('unchanged'));
    set([]);
    writer.sync();
    await until('removed', () => results.filter((r) => r === 'patched').length === 2);
    expect(stored()[1]!.matchConditions).toBeUndefined();
  });

  it('an expression the API server rejects changes nothing it wrote, and the old conditions go: every pod is sent', async () => {
    const { writer, results, stored, set } = await setup();
    writer.sync();
    await until('written', () => results.includes('patched'));
    set([{ name: 'sidecar-injector-asked', expression: 'has(object.metadata.labels' }]);
    writer.sync();
    await until('rejected', () => results.includes('rejected'));
    expect(stored()[1]!.matchConditions).toBeUndefined();
    expect(fake!.requests.filter((r) => r.method === 'PATCH').length).toBe(3);
  });

  it('a one-entry configuration written by hand sends every pod: conditions found there are removed, and that is logged once', async () => {
    const configuration = webhookConfiguration();
    configuration.webhooks = [{ ...configuration.webhooks[1]!, name: 'pods.example.com', namespaceSelector: { matchExpressions: [configuration.webhooks[1]!.namespaceSelector.matchExpressions[0]!] } }];
    (configuration.webhooks[0] as { matchConditions?: MatchCondition[] }).matchConditions = OPT_IN;
    const lines: { msg: string; level: number; webhook?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { writer, results, stored } = await setup({}, configuration, logger);
    writer.sync();
    await until('removed', () => results.includes('patched'));
    expect(stored()[0]!.matchConditions).toBeUndefined();
    writer.sync();
    await until('checked', () => results.includes('unchanged'));
    const advice = lines.filter((l) => l.webhook === 'pods.example.com' && l.msg.includes('split it in two'));
    expect(advice).toHaveLength(1);
    expect(advice[0]!.level).toBe(30);
  });

  it('checked again periodically: a configuration whose conditions were lost (re-created) gets them back without a reload', async () => {
    const { writer, results, stored } = await setup();
    writer.start(100);
    await until('written', () => results.includes('patched'));
    const mwc = fake!.get('mutatingwebhookconfigurations', NAME)!;
    fake!.put('mutatingwebhookconfigurations', { ...mwc, webhooks: (mwc.webhooks as object[]).map((w) => ({ ...w, matchConditions: undefined })) });
    expect(stored()[1]!.matchConditions).toBeUndefined();
    await until('written again', () => results.filter((r) => r === 'patched').length === 2);
    expect(stored()[1]!.matchConditions).toEqual(OPT_IN);
  });

  it('more than 64 conditions are refused by the API server as well', async () => {
    const { writer, results, stored, set } = await setup();
    set(Array.from({ length: 65 }, (_, i) => ({ name: `c${i}`, expression: 'true' })));
    writer.sync();
    await until('rejected', () => results.includes('rejected'));
    expect(stored()[1]!.matchConditions).toBeUndefined();
  });

  it('a server with the feature off drops the field: noticed, not rewritten forever', async () => {
    const { writer, results } = await setup({ matchConditions: false });
    writer.sync();
    await until('unsupported', () => results.includes('unsupported'));
    expect(results).toEqual(['unsupported']);
  });
});
