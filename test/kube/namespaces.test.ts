import { afterEach, describe, expect, it } from '@jest/globals';
import { NamespaceCache, type WatchRestartReason } from '../../src/kube/namespaces.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { quietLogger, startFake, until } from './helpers.js';
import type { KubeClient } from '../../src/kube/client.js';

const INJECTION = 'sidecar-injector.io/injection';

let fake: FakeApiServer | undefined;
let cache: NamespaceCache | undefined;

afterEach(async () => {
  cache?.stop();
  await fake?.stop();
  cache = undefined;
  fake = undefined;
});

function makeCache(client: KubeClient, extra: Partial<ConstructorParameters<typeof NamespaceCache>[0]> = {}) {
  const seen = { synced: [] as boolean[], restarts: [] as WatchRestartReason[], lookups: [] as string[] };
  const c = new NamespaceCache({
    client,
    logger: quietLogger,
    events: { synced: (s) => seen.synced.push(s), watchRestart: (r) => seen.restarts.push(r), lookup: (r) => seen.lookups.push(r) },
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    ...extra,
  });
  return { c, seen };
}

describe('namespace label cache (list + watch)', () => {
  it('lists, then follows creations, relabels and deletions from the watch', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', { [INJECTION]: 'enabled' });
    fake.namespace('plain');
    const { c, seen } = makeCache(started.client);
    cache = c;
    expect(c.synced).toBe(false);
    void c.run();
    await until('sync', () => c.synced);
    expect(seen.synced).toEqual([true]);
    expect(c.labels('shop')?.[INJECTION]).toBe('enabled');
    expect(c.labels('plain')).toEqual({ 'kubernetes.io/metadata.name': 'plain' });
    expect(c.labels('nowhere')).toBeUndefined();

    await until('the watch', () => fake!.watchCount === 1);
    const watch = fake.requests.find((r) => r.query.get('watch') === 'true')!;
    expect(watch.query.get('allowWatchBookmarks')).toBe('true');
    expect(Number(watch.query.get('resourceVersion'))).toBeGreaterThan(0);

    fake.namespace('late', { [INJECTION]: 'enabled' });
    await until('a namespace created after start', () => c.labels('late')?.[INJECTION] === 'enabled');
    fake.namespace('shop', { [INJECTION]: 'disabled' });
    await until('a relabel', () => c.labels('shop')?.[INJECTION] === 'disabled');
    fake.deleteNamespace('plain');
    await until('a deletion', () => c.labels('plain') === undefined);
    // Nothing was read directly: the watch delivered it all.
    expect(fake.requests.filter((r) => /^\/api\/v1\/namespaces\/[^/]+$/.test(r.path))).toEqual([]);
  });

  it('reads every page of a large list (limit and continue)', async () => {
    const started = await startFake();
    fake = started.fake;
    for (let i = 0; i < 1203; i++) fake.namespace(`ns-${String(i).padStart(4, '0')}`);
    const { c } = makeCache(started.client, { pageSize: 500 });
    cache = c;
    void c.run();
    await until('sync', () => c.synced);
    const lists = fake.requests.filter((r) => r.path === '/api/v1/namespaces' && r.query.get('watch') !== 'true');
    expect(lists.map((r) => [r.query.get('limit'), r.query.has('continue')])).toEqual([
      ['500', false],
      ['500', true],
      ['500', true],
    ]);
    expect(c.labels('ns-0000')).toBeDefined();
    expect(c.labels('ns-1202')).toBeDefined();
  });

  it('survives a dropped stream: rewatches from the last resourceVersion and misses nothing', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('a');
    const { c, seen } = makeCache(started.client);
    cache = c;
    void c.run();
    await until('the watch', () => c.synced && fake!.watchCount === 1);
    fake.namespace('b', { [INJECTION]: 'enabled' });
    await until('b', () => c.labels('b') !== undefined);
    fake.bookmark();
    await new Promise((r) => setTimeout(r, 50));
    fake.dropWatches();
    fake.namespace('c', { [INJECTION]: 'enabled' }); // while no watch is open
    await until('the second watch', () => fake!.watchCount === 1);
    await until('c, from the replayed history', () => c.labels('c') !== undefined);
    expect(seen.restarts.length).toBeGreaterThanOrEqual(1);
    const watches = fake.requests.filter((r) => r.query.get('watch') === 'true');
    expect(watches.length).toBe(2);
    // The second watch resumed from the bookmark's resourceVersion; no second list.
    expect(Number(watches[1]!.query.get('resourceVersion'))).toBeGreaterThan(Number(watches[0]!.query.get('resourceVersion')));
    expect(fake.requests.filter((r) => r.path === '/api/v1/namespaces' && r.query.get('watch') !== 'true').length).toBe(1);
  });

  it('relists after 410 Gone when the API server comes back having compacted its history', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('old', { [INJECTION]: 'enabled' });
    const { c, seen } = makeCache(started.client);
    cache = c;
    void c.run();
    await until('the watch', () => c.synced && fake!.watchCount === 1);
    await fake.stop();
    fake.deleteNamespace('old');
    fake.namespace('new', { [INJECTION]: 'enabled' });
    fake.compact();
    await fake.start(fake.port);
    await until('the relist', () => c.labels('new') !== undefined && c.labels('old') === undefined, 8000);
    expect(seen.restarts).toContain('expired');
    const watches = fake.requests.filter((r) => r.query.get('watch') === 'true');
    expect(watches.length).toBeGreaterThanOrEqual(2);
    expect(fake.requests.filter((r) => r.path === '/api/v1/namespaces' && r.query.get('watch') !== 'true').length).toBe(2);
  });

  it('backs off while the API server is unreachable, then syncs', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.failures.push({ pattern: /^GET \/api\/v1\/namespaces$/, code: 500 }, { pattern: /^GET \/api\/v1\/namespaces$/, code: 503 });
    const { c, seen } = makeCache(started.client);
    cache = c;
    void c.run();
    await until('sync after two failures', () => c.synced);
    expect(seen.restarts).toEqual(['error', 'error']);
  });
});

describe('namespaces the cache has not seen', () => {
  it('are read once, shared by concurrent admissions, and remembered', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('fresh', { [INJECTION]: 'enabled' });
    const { c, seen } = makeCache(started.client);
    cache = c;
    const [a, b] = await Promise.all([c.lookup('fresh'), c.lookup('fresh')]);
    expect(a.labels?.[INJECTION]).toBe('enabled');
    expect(b).toEqual(a);
    expect(c.labels('fresh')?.[INJECTION]).toBe('enabled');
    expect(fake.requests.filter((r) => r.path === '/api/v1/namespaces/fresh').length).toBe(1);
    expect(seen.lookups).toEqual(['fetched']);
  });

  it('a read slower than the bound or a missing namespace gives a problem, not labels, and is counted', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('slow');
    fake.delays.push({ pattern: /^GET \/api\/v1\/namespaces\/slow$/, ms: 1500 });
    const { c, seen } = makeCache(started.client, { lookupTimeoutMs: 300 });
    cache = c;
    const t0 = Date.now();
    const slow = await c.lookup('slow');
    expect(Date.now() - t0).toBeLessThan(1200);
    expect(slow.labels).toBeUndefined();
    expect('problem' in slow && slow.problem).toContain('no answer within 300 ms');
    const missing = await c.lookup('ghost');
    expect('problem' in missing && missing.problem).toBe('namespace ghost not found');
    expect(seen.lookups).toEqual(['failed', 'failed']);
    expect(c.labels('slow')).toBeUndefined();
  });
});
