import { describe, expect, it } from '@jest/globals';
import { rolloutStatus } from '../../src/core/rollout.js';
import { sentToWebhook, type WebhookScope } from '../../src/core/scope.js';

describe('sentToWebhook: label selectors as the API server applies them', () => {
  const ns = { team: 'shop', 'sidecar-injector.io/injection': 'enabled' };
  const one = (w: WebhookScope, nsLabels: Record<string, string> | undefined = ns, pod: Record<string, string> | undefined = { app: 'web' }, namespace = 'shop') =>
    sentToWebhook([w], namespace, nsLabels, pod);

  it('an empty or absent selector selects everything; kubernetes.io/metadata.name is there even when a source lacks it', () => {
    expect(one({})).toBe(true);
    expect(one({ namespaceSelector: {}, objectSelector: {} }, undefined, undefined)).toBe(true);
    expect(one({ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'sidecar-injector'] }] } }, {}, {}, 'sidecar-injector')).toBe(false);
    expect(one({ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] }] } }, {}, {}, 'shop')).toBe(true);
  });

  it.each([
    ['matchLabels', { matchLabels: { team: 'shop' } }, true],
    ['matchLabels, another value', { matchLabels: { team: 'bank' } }, false],
    ['In', { matchExpressions: [{ key: 'team', operator: 'In' as const, values: ['bank', 'shop'] }] }, true],
    ['In, absent key', { matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['web'] }] }, false],
    ['NotIn', { matchExpressions: [{ key: 'team', operator: 'NotIn' as const, values: ['shop'] }] }, false],
    ['NotIn, absent key', { matchExpressions: [{ key: 'tier', operator: 'NotIn' as const, values: ['web'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'team', operator: 'Exists' as const }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' as const }] }, false],
  ])('namespaceSelector %s', (_what, selector, sent) => {
    expect(one({ namespaceSelector: selector })).toBe(sent);
  });

  it('objectSelector over the pod labels, a pod without labels included', () => {
    const optOut = { objectSelector: { matchExpressions: [{ key: 'sidecar-injector.io/inject', operator: 'NotIn' as const, values: ['false'] }] } };
    expect(one(optOut, ns, { 'sidecar-injector.io/inject': 'false' })).toBe(false);
    expect(one(optOut, ns, undefined)).toBe(true);
  });

  it('several webhooks: sent when any selects the pod (the chart splits by the namespace label)', () => {
    const split = (operator: 'In' | 'NotIn'): WebhookScope => ({ namespaceSelector: { matchExpressions: [{ key: 'sidecar-injector.io/injection', operator, values: ['enabled'] }] } });
    expect(sentToWebhook([split('In'), split('NotIn')], 'quiet', {}, {})).toBe(true);
    expect(sentToWebhook([split('In')], 'quiet', {}, {})).toBe(false);
    expect(sentToWebhook([], 'shop', ns, {})).toBe(false);
  });
});

describe('rolloutStatus, as kubectl rollout status judges it', () => {
  const deployment = (status: Record<string, unknown>, generation = 2) => ({ metadata: { generation }, spec: { replicas: 3 }, status });
  it.each([
    [deployment({ observedGeneration: 1, updatedReplicas: 3, replicas: 3, availableReplicas: 3 }), false, 'waiting for the rollout to be observed'],
    [deployment({ observedGeneration: 2, updatedReplicas: 1, replicas: 3, availableReplicas: 3 }), false, '1 out of 3 new replicas have been updated'],
    [deployment({ observedGeneration: 2, updatedReplicas: 3, replicas: 4, availableReplicas: 3 }), false, '1 old replicas are pending termination'],
    [deployment({ observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 2 }), false, '2 of 3 updated replicas are available'],
    [deployment({ observedGeneration: 2, updatedReplicas: 3, replicas: 3, availableReplicas: 3 }), true, 'successfully rolled out'],
  ])('Deployment %#', (object, done, message) => {
    expect(rolloutStatus('Deployment', object)).toMatchObject({ done, message });
  });

  it('a Deployment past its progress deadline has failed', () => {
    const stuck = deployment({ observedGeneration: 2, conditions: [{ type: 'Progressing', reason: 'ProgressDeadlineExceeded' }] });
    expect(rolloutStatus('Deployment', stuck)).toMatchObject({ done: false, failed: true });
  });

  it('StatefulSet: ready replicas and revisions; partitions; OnDelete cannot be watched', () => {
    const sts = (status: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({ metadata: { generation: 1 }, spec: { replicas: 2, ...spec }, status: { observedGeneration: 1, ...status } });
    expect(rolloutStatus('StatefulSet', sts({ readyReplicas: 1 })).done).toBe(false);
    expect(rolloutStatus('StatefulSet', sts({ readyReplicas: 2, currentRevision: 'a', updateRevision: 'b' })).done).toBe(false);
    expect(rolloutStatus('StatefulSet', sts({ readyReplicas: 2, currentRevision: 'b', updateRevision: 'b' })).done).toBe(true);
    expect(rolloutStatus('StatefulSet', sts({ readyReplicas: 2, updatedReplicas: 1 }, { updateStrategy: { rollingUpdate: { partition: 1 } } })).done).toBe(true);
    expect(rolloutStatus('StatefulSet', sts({}, { updateStrategy: { type: 'OnDelete' } }))).toMatchObject({ failed: true });
  });

  it('DaemonSet: every scheduled pod updated and available', () => {
    const ds = (status: Record<string, unknown>) => ({ metadata: { generation: 1 }, spec: {}, status: { observedGeneration: 1, desiredNumberScheduled: 3, ...status } });
    expect(rolloutStatus('DaemonSet', ds({ updatedNumberScheduled: 2, numberAvailable: 3 })).done).toBe(false);
    expect(rolloutStatus('DaemonSet', ds({ updatedNumberScheduled: 3, numberAvailable: 2 })).done).toBe(false);
    expect(rolloutStatus('DaemonSet', ds({ updatedNumberScheduled: 3, numberAvailable: 3 })).done).toBe(true);
  });
});
