import { afterEach, describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { podEvent } from '../../src/core/events.js';
import type { KubeClient } from '../../src/kube/client.js';
import { EventRecorder, type EventRecorderOptions, type EventResult } from '../../src/kube/events.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { testConfig } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { quietLogger, startFake, until } from './helpers.js';

let fake: FakeApiServer | undefined;
const recorders: EventRecorder[] = [];
afterEach(async () => {
  for (const r of recorders.splice(0)) await r.close().catch(() => undefined);
  await fake?.stop();
  fake = undefined;
});

const server = { nativeSidecars: true };
const eventOf = (pod: V1Pod, config = testConfig()) => podEvent(pod, 'shop', admitPod(pod, { namespace: 'shop', namespaceLabels: undefined, server }, config), config);

describe('which admissions deserve an Event, and on what', () => {
  it('an injected pod of a ReplicaSet: Normal Injected on the ReplicaSet, named by generateName', () => {
    const e = eventOf(apiserverPod())!;
    expect(e).toMatchObject({ namespace: 'shop', type: 'Normal', reason: 'Injected', involvedObject: { kind: 'ReplicaSet', apiVersion: 'apps/v1', namespace: 'shop' } });
    expect(e.involvedObject.uid).toBeDefined();
    expect(e.message).toContain('web-7d4b9c8f6-*');
  });

  it('a bare pod that asked and was refused: a Warning on its namespace; a pod that never asked: nothing', () => {
    const bare = apiserverPod((p) => {
      delete p.metadata!.ownerReferences;
      p.metadata!.name = 'bare';
      p.spec!.containers.push({ name: 'log-shipper', image: 'mine:1' });
    });
    expect(eventOf(bare)).toMatchObject({ reason: 'InjectionConflict', type: 'Warning', involvedObject: { kind: 'Namespace', name: 'shop', namespace: 'shop' } });
    const silent = apiserverPod((p) => {
      delete p.metadata!.annotations!['sidecar-injector.io/inject'];
    });
    expect(eventOf(silent)).toBeUndefined();
    const optedIn = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'true';
    });
    expect(eventOf(optedIn, testConfig('defaultProfiles: []'))?.reason).toBe('InjectionSkipped');
  });
});

function recorder(client: KubeClient, opts: Partial<EventRecorderOptions> = {}) {
  const results: EventResult[] = [];
  const r = new EventRecorder({ client, logger: quietLogger, onResult: (x) => results.push(x), flushIntervalMs: 50, ...opts });
  recorders.push(r);
  return { r, results };
}

describe('the event recorder', () => {
  it('aggregates a burst into one Event with a count, then PATCHes the count when it happens again', async () => {
    const started = await startFake();
    fake = started.fake;
    const { r, results } = recorder(started.client);
    const e = eventOf(apiserverPod())!;
    for (let i = 0; i < 1000; i++) r.record(e);
    await until('the event', () => results.length === 1);
    const events = fake.all('events');
    expect(events.length).toBe(1);
    expect(events[0]).toMatchObject({ count: 1000, reason: 'Injected', type: 'Normal', source: { component: 'sidecar-injector' }, reportingComponent: 'sidecar-injector' });
    r.record(e);
    r.record(e);
    await until('the update', () => results.length === 2);
    expect(results).toEqual(['created', 'updated']);
    expect(fake.all('events')[0]!.count).toBe(1002);
    expect(fake.requests.filter((x) => x.method === 'PATCH').map((x) => x.contentType)).toEqual(['application/strategic-merge-patch+json']);
  });

  it('bounds what waits: distinct events beyond the bound are dropped and counted; writes are rate-limited', async () => {
    const started = await startFake();
    fake = started.fake;
    const { r, results } = recorder(started.client, { maxPending: 10, qps: 1, burst: 5 });
    const base = eventOf(apiserverPod())!;
    for (let i = 0; i < 30; i++) r.record({ ...base, message: `${base.message} #${i}` });
    expect(results.filter((x) => x === 'dropped').length).toBe(20);
    await until('the burst', () => results.filter((x) => x === 'created').length === 5);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // 5 at once (the burst), then about one a second.
    expect(results.filter((x) => x === 'created').length).toBeLessThanOrEqual(6);
  });

  it('record() returns at once while the API server is slow, and a failed write is counted, not thrown', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.delays.push({ pattern: /^POST /, ms: 300 });
    const { r, results } = recorder(started.client);
    const e = eventOf(apiserverPod())!;
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) r.record({ ...e, message: `${e.message} ${i % 7}` });
    expect(performance.now() - t0).toBeLessThan(100);
    fake.failures.push({ pattern: /^POST /, code: 500 });
    await until('all written or failed', () => results.length === 7, 10_000);
    expect(results.filter((x) => x === 'failed').length).toBe(1);
  });
});
