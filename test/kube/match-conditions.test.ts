import { afterEach, describe, expect, it } from '@jest/globals';
import { matchConditionsFor, type MatchCondition } from '../../src/core/match-conditions.js';
import { matchConditionsPatch, MatchConditionsWriter, servesEnabledNamespaces, type MatchConditionsResult } from '../../src/kube/match-conditions.js';
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
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'sidecar-injector'] },
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
    expect(servesEnabledNamespaces(hooks[0]!, LABEL)).toBe(true);
    expect(servesEnabledNamespaces(hooks[1]!, LABEL)).toBe(false);
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

describe('MatchConditionsWriter against the fake API server', () => {
  let fake: FakeApiServer | undefined;
  const writers: MatchConditionsWriter[] = [];
  afterEach(async () => {
    for (const w of writers.splice(0)) w.stop();
    await fake?.stop();
    fake = undefined;
  });

  async function setup(opts: FakeOptions = {}) {
    const started = await startFake(opts);
    fake = started.fake;
    fake.put('mutatingwebhookconfigurations', webhookConfiguration());
    const results: MatchConditionsResult[] = [];
    let desired: MatchCondition[] = OPT_IN;
    const writer = new MatchConditionsWriter({
      client: started.client,
      name: NAME,
      logger: quietLogger,
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
