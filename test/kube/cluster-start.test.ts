import { afterEach, describe, expect, it } from '@jest/globals';
import { startCluster, type ClusterFeatures } from '../../src/cli/cluster.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { createMetrics } from '../../src/ops/metrics.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { quietLogger, startFake, until } from './helpers.js';

let fake: FakeApiServer | undefined;
let cluster: ClusterFeatures | undefined;
afterEach(async () => {
  cluster?.stop();
  await fake?.stop();
});

describe('readiness with a cluster', () => {
  it('waits for the namespace cache, but not longer than its bound; rule 7 then runs on direct reads', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', { 'sidecar-injector.io/injection': 'enabled' });
    fake.delays.push({ pattern: /^GET \/api\/v1\/namespaces$/, ms: 3000 });
    const config = compile(TEST_CONFIG_YAML);
    cluster = startCluster(started.client, {
      flags: { 'no-events': true },
      logger: quietLogger,
      metrics: createMetrics(),
      kubeVersion: undefined,
      caPath: '/nonexistent/ca.crt',
      syncBoundMs: 500,
      config: () => config,
    });
    expect(cluster.notReady()).toBe('namespace cache not synced');
    await until('the bound', () => cluster!.notReady() === undefined, 2000);
    expect(cluster.namespaces.synced).toBe(false);
    expect((await cluster.namespaces.lookup('shop')).labels?.['sidecar-injector.io/injection']).toBe('enabled');
    // The probe ran meanwhile: a plain v1.31.2 has native sidecars.
    await until('the probe', () => cluster!.server().nativeSidecars === true);
  });
});
