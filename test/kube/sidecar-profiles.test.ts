/**
 * The SidecarProfile index against the fake API server: the namespace
 * cache's discipline (list, watch from the list's resourceVersion, rewatch
 * after a dropped stream, relist after 410 Gone, backoff while the API server
 * is away), the index by namespace behind MutateContext.tenantProfiles, the
 * synced metric, and a CRD that is not installed yet (or is removed).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { SidecarProfileIndex, SIDECAR_PROFILES_PATH, type ProfileChange } from '../../src/kube/sidecar-profiles.js';
import type { WatchRestartReason } from '../../src/kube/reflector.js';
import type { KubeClient } from '../../src/kube/client.js';
import { createMetrics, type Metrics } from '../../src/ops/metrics.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { restrictedProfile } from '../helpers/tenant-profiles.js';
import { quietLogger, startFake, until } from './helpers.js';

let fake: FakeApiServer | undefined;
let index: SidecarProfileIndex | undefined;

afterEach(async () => {
  index?.stop();
  await fake?.stop();
  index = undefined;
  fake = undefined;
});

function makeIndex(client: KubeClient, extra: { logger?: typeof quietLogger; metrics?: Metrics; pageSize?: number } = {}) {
  const seen = { synced: [] as boolean[], restarts: [] as WatchRestartReason[], changes: [] as ProfileChange[] };
  const i = new SidecarProfileIndex({
    client,
    logger: extra.logger ?? quietLogger,
    events: {
      synced: (s) => {
        seen.synced.push(s);
        extra.metrics?.sidecarProfilesSynced(s);
      },
      watchRestart: (r) => {
        seen.restarts.push(r);
        extra.metrics?.sidecarProfileWatchRestart(r);
      },
    },
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    pageSize: extra.pageSize,
  });
  i.onChange((c) => seen.changes.push(c));
  return { i, seen };
}

const lists = (f: FakeApiServer) => f.requests.filter((r) => r.path === SIDECAR_PROFILES_PATH && r.query.get('watch') !== 'true');
const watches = (f: FakeApiServer) => f.requests.filter((r) => r.path === SIDECAR_PROFILES_PATH && r.query.get('watch') === 'true');
const profileWatchOpen = (f: FakeApiServer) => f.watchCount === 1;

function withImage(image: string) {
  const p = restrictedProfile();
  p.containers[0]!.image = image;
  return p;
}

async function gauge(metrics: Metrics, name: string): Promise<number | undefined> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value;
}

describe('SidecarProfile index (list + watch)', () => {
  it('lists every namespace, then follows creations, spec changes and deletions; lookup hands out the namespace map', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    fake.sidecarProfile('shop', 'cache', restrictedProfile());
    fake.sidecarProfile('billing', 'db-proxy', { containers: 'not a list' });
    const metrics = createMetrics();
    const { i, seen } = makeIndex(started.client, { metrics });
    index = i;
    expect(await gauge(metrics, 'sidecar_injector_sidecarprofiles_synced')).toBe(0);
    expect(i.lookup('shop')).toBeUndefined();
    void i.run();
    await until('sync', () => i.synced);
    expect(seen.synced).toEqual([true]);
    expect(await gauge(metrics, 'sidecar_injector_sidecarprofiles_synced')).toBe(1);
    expect(seen.changes).toEqual([{ type: 'resynced' }]);

    const shop = i.lookup('shop');
    expect([...(shop?.keys() ?? [])].sort()).toEqual(['cache', 'db-proxy']);
    expect(shop?.get('db-proxy')).toMatchObject({ namespace: 'shop', name: 'db-proxy', generation: 1, specProblems: [] });
    expect(shop?.get('db-proxy')?.profile?.containers[0]?.name).toBe('db-proxy');
    // A spec that is not a profile is indexed with its problems, so its status can say why.
    const invalid = i.lookup('billing')?.get('db-proxy');
    expect(invalid?.profile).toBeUndefined();
    expect(invalid?.specProblems.join('\n')).toMatch(/^spec\.containers/);
    expect(i.lookup('nowhere')).toBeUndefined();
    // No copy per call: the same map, kept in step.
    expect(i.lookup('shop')).toBe(shop);

    await until('the watch', () => profileWatchOpen(fake!));
    expect(watches(fake)[0]!.query.get('allowWatchBookmarks')).toBe('true');
    expect(Number(watches(fake)[0]!.query.get('resourceVersion'))).toBeGreaterThan(0);

    fake.sidecarProfile('shop', 'late', restrictedProfile());
    await until('a profile created after the list', () => shop?.has('late') === true);
    fake.sidecarProfile('shop', 'db-proxy', withImage('registry.example.com/team/db-proxy:1.5'));
    await until('a spec change', () => shop?.get('db-proxy')?.generation === 2);
    expect(shop?.get('db-proxy')?.profile?.containers[0]?.image).toBe('registry.example.com/team/db-proxy:1.5');
    expect(i.get('shop', 'db-proxy')?.resourceVersion).toBe((fake.get('sidecarprofiles', 'shop/db-proxy')!.metadata as { resourceVersion: string }).resourceVersion);
    fake.deleteSidecarProfile('shop', 'cache');
    await until('a deletion', () => shop?.has('cache') === false);
    fake.deleteSidecarProfile('billing', 'db-proxy');
    await until('the last of a namespace', () => i.lookup('billing') === undefined);

    expect(seen.changes.slice(1)).toEqual([
      { type: 'upsert', namespace: 'shop', name: 'late', generationChanged: true },
      { type: 'upsert', namespace: 'shop', name: 'db-proxy', generationChanged: true },
      { type: 'deleted', namespace: 'shop', name: 'cache' },
      { type: 'deleted', namespace: 'billing', name: 'db-proxy' },
    ]);
    expect(lists(fake).length).toBe(1);
  });

  it('says when only status moved (a status write): generationChanged false, conditions kept for the writer', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const { i, seen } = makeIndex(started.client);
    index = i;
    void i.run();
    await until('the watch', () => i.synced && profileWatchOpen(fake!));
    const condition = { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' };
    const rv = (fake.get('sidecarprofiles', 'shop/db-proxy')!.metadata as { resourceVersion: string }).resourceVersion;
    await started.client.request('PATCH', '/apis/sidecar-injector.io/v1alpha1/namespaces/shop/sidecarprofiles/db-proxy/status', {
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion: rv }, status: { conditions: [condition] } },
    });
    await until('the status event', () => i.get('shop', 'db-proxy')?.conditions.length === 1);
    expect(i.get('shop', 'db-proxy')?.conditions).toEqual([condition]);
    expect(i.get('shop', 'db-proxy')?.tenant.generation).toBe(1);
    expect(seen.changes.at(-1)).toEqual({ type: 'upsert', namespace: 'shop', name: 'db-proxy', generationChanged: false });
  });

  it('reads every page of a large list', async () => {
    const started = await startFake();
    fake = started.fake;
    for (let n = 0; n < 7; n++) fake.sidecarProfile(`ns-${n}`, 'p', restrictedProfile());
    const { i } = makeIndex(started.client, { pageSize: 3 });
    index = i;
    void i.run();
    await until('sync', () => i.synced);
    expect(lists(fake).map((r) => [r.query.get('limit'), r.query.has('continue')])).toEqual([
      ['3', false],
      ['3', true],
      ['3', true],
    ]);
    for (let n = 0; n < 7; n++) expect(i.lookup(`ns-${n}`)?.has('p')).toBe(true);
  });

  it('survives a dropped stream: rewatches from the last resourceVersion, relists nothing, misses nothing', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'a', restrictedProfile());
    const { i, seen } = makeIndex(started.client);
    index = i;
    void i.run();
    await until('the watch', () => i.synced && profileWatchOpen(fake!));
    fake.sidecarProfile('shop', 'b', restrictedProfile());
    await until('b', () => i.lookup('shop')?.has('b') === true);
    fake.dropWatches();
    fake.sidecarProfile('shop', 'c', restrictedProfile()); // while no watch is open
    await until('c, from the replayed history', () => i.lookup('shop')?.has('c') === true);
    expect(seen.restarts.length).toBeGreaterThanOrEqual(1);
    expect(seen.restarts).not.toContain('expired');
    expect(watches(fake).length).toBe(2);
    expect(Number(watches(fake)[1]!.query.get('resourceVersion'))).toBeGreaterThan(Number(watches(fake)[0]!.query.get('resourceVersion')));
    expect(lists(fake).length).toBe(1);
  });

  it('moves its resourceVersion with bookmarks', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'a', restrictedProfile());
    const { i } = makeIndex(started.client);
    index = i;
    void i.run();
    await until('the watch', () => i.synced && profileWatchOpen(fake!));
    fake.namespace('unrelated'); // moves the server's resourceVersion, not seen by this watch
    fake.bookmark();
    const bookmarked = (fake.get('namespaces', 'unrelated')!.metadata as { resourceVersion: string }).resourceVersion;
    await until('the bookmark', () => i.lastSyncResourceVersion === bookmarked);
    fake.dropWatches();
    await until('the second watch', () => watches(fake!).length === 2);
    expect(watches(fake)[1]!.query.get('resourceVersion')).toBe(bookmarked);
    expect(lists(fake).length).toBe(1);
  });

  it('relists after 410 Gone when the API server comes back having compacted its history', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'old', restrictedProfile());
    const metrics = createMetrics();
    const { i, seen } = makeIndex(started.client, { metrics });
    index = i;
    void i.run();
    await until('the watch', () => i.synced && profileWatchOpen(fake!));
    await fake.stop();
    fake.deleteSidecarProfile('shop', 'old');
    fake.sidecarProfile('shop', 'new', restrictedProfile());
    fake.compact();
    await fake.start(fake.port);
    await until('the relist', () => i.lookup('shop')?.has('new') === true && !i.lookup('shop')?.has('old'), 8000);
    expect(seen.restarts).toContain('expired');
    expect(lists(fake).length).toBe(2);
    expect(seen.changes.filter((c) => c.type === 'resynced').length).toBe(2);
    const restarts = await metrics.registry.getSingleMetric('sidecar_injector_sidecarprofile_watch_restarts_total')?.get();
    expect(restarts?.values.find((v) => v.labels.reason === 'expired')?.value).toBeGreaterThanOrEqual(1);
    // Still synced (once), and the namespace watch's counter untouched.
    expect(seen.synced).toEqual([true]);
    const namespaceRestarts = await metrics.registry.getSingleMetric('sidecar_injector_namespace_watch_restarts_total')?.get();
    expect(namespaceRestarts?.values.every((v) => v.value === 0)).toBe(true);
  });

  it('backs off while the API server is unreachable, then syncs', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.sidecarProfile('shop', 'a', restrictedProfile());
    await fake.stop();
    const { i, seen } = makeIndex(started.client);
    index = i;
    void i.run();
    await until('two failed attempts', () => seen.restarts.length >= 2);
    expect(i.synced).toBe(false);
    expect(new Set(seen.restarts)).toEqual(new Set(['error']));
    await fake.start(fake.port);
    await until('sync once it is back', () => i.synced && i.lookup('shop')?.has('a') === true);
  });

  it('retries a list that fails with an error status', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.failures.push({ pattern: /^GET \/apis\/sidecar-injector\.io\/v1alpha1\/sidecarprofiles$/, code: 500 }, { pattern: /^GET \/apis\/sidecar-injector\.io\/v1alpha1\/sidecarprofiles$/, code: 403 });
    const { i, seen } = makeIndex(started.client);
    index = i;
    void i.run();
    await until('sync after two failures', () => i.synced);
    expect(seen.restarts).toEqual(['error', 'error']);
    expect(i.notServed).toBe(false);
  });
});

describe('without the SidecarProfile CRD', () => {
  it('serves nothing, says so once, finds the CRD when it is installed, and forgets profiles when it is removed', async () => {
    const started = await startFake({ sidecarProfileCrd: false });
    fake = started.fake;
    const lines: { msg: string; level: number }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; level: number }) });
    const metrics = createMetrics();
    const { i, seen } = makeIndex(started.client, { logger, metrics });
    index = i;
    void i.run();
    await until('three lists answered 404', () => lists(fake!).length >= 3);
    // Known to hold nothing: synced (readiness need not wait), nothing served, no restart counted.
    expect(i.synced).toBe(true);
    expect(i.notServed).toBe(true);
    expect(await gauge(metrics, 'sidecar_injector_sidecarprofiles_synced')).toBe(1);
    expect(i.lookup('shop')).toBeUndefined();
    expect(seen.restarts).toEqual([]);
    expect(lines.filter((l) => /not served/.test(l.msg)).length).toBe(1);

    fake.installSidecarProfileCrd();
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    await until('the profile, once the CRD is there', () => i.lookup('shop')?.has('db-proxy') === true);
    expect(i.notServed).toBe(false);
    expect(lines.filter((l) => /is served by the API server now/.test(l.msg)).length).toBe(1);
    await until('the watch', () => profileWatchOpen(fake!));

    fake.uninstallSidecarProfileCrd();
    await until('the profiles gone with the CRD', () => i.lookup('shop') === undefined && i.notServed);
    expect(lines.filter((l) => /not served/.test(l.msg)).length).toBe(2);
  });
});

describe('the fake API server serves SidecarProfiles as apiextensions-apiserver does (status subresource)', () => {
  it('generation moves with the spec, never with status; status only through /status; a patch resourceVersion is a precondition', async () => {
    const started = await startFake();
    fake = started.fake;
    const { client } = started;
    const base = '/apis/sidecar-injector.io/v1alpha1/namespaces/shop/sidecarprofiles';
    type O = { metadata: { generation: number; resourceVersion: string; labels?: Record<string, string> }; spec?: unknown; status?: unknown };
    const body = (r: { body: unknown }) => r.body as O;

    // Create: generation 1, status dropped.
    const created = body(await client.request('POST', base, { body: { apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile', metadata: { name: 'p' }, spec: { containers: [] }, status: { conditions: [] } } }));
    expect(created.metadata.generation).toBe(1);
    expect(created.status).toBeUndefined();

    // Status through /status: generation stays.
    const condition = { type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' };
    const statused = body(await client.request('PATCH', `${base}/p/status`, { contentType: 'application/merge-patch+json', body: { status: { conditions: [condition] }, spec: { containers: [{ name: 'x' }] } } }));
    expect(statused.metadata.generation).toBe(1);
    expect(statused.status).toEqual({ conditions: [condition] });
    expect(statused.spec).toEqual({ containers: [] }); // a status write changes status only

    // The same status again: nothing stored, no new resourceVersion.
    const again = body(await client.request('PATCH', `${base}/p/status`, { contentType: 'application/merge-patch+json', body: { status: { conditions: [condition] } } }));
    expect(again.metadata.resourceVersion).toBe(statused.metadata.resourceVersion);

    // The main resource: status kept whatever the write says; a label alone leaves generation, a spec change bumps it.
    const labelled = body(await client.request('PATCH', `${base}/p`, { contentType: 'application/merge-patch+json', body: { metadata: { labels: { a: 'b' } }, status: null } }));
    expect(labelled.metadata.generation).toBe(1);
    expect(labelled.status).toEqual({ conditions: [condition] });
    const respec = body(await client.request('PATCH', `${base}/p`, { contentType: 'application/merge-patch+json', body: { spec: { containers: [{ name: 'y' }] } } }));
    expect(respec.metadata.generation).toBe(2);
    const put = body(await client.request('PUT', `${base}/p`, { body: { ...respec, spec: { containers: [{ name: 'z' }] }, status: { conditions: [] } } }));
    expect(put.metadata.generation).toBe(3);
    expect(put.status).toEqual({ conditions: [condition] });

    // A stale resourceVersion in a merge patch: 409 Conflict.
    await expect(
      client.request('PATCH', `${base}/p/status`, { contentType: 'application/merge-patch+json', body: { metadata: { resourceVersion: statused.metadata.resourceVersion }, status: { conditions: [] } } }),
    ).rejects.toMatchObject({ status: 409, reason: 'Conflict' });

    // Lists of custom resources carry apiVersion and kind on each item; built-in kinds have no /status here.
    const list = body(await client.request('GET', SIDECAR_PROFILES_PATH)) as unknown as { items: { apiVersion: string; kind: string }[] };
    expect(list.items[0]).toMatchObject({ apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile' });
    fake.namespace('shop');
    await expect(client.request('GET', '/api/v1/namespaces/shop/status')).rejects.toMatchObject({ status: 404 });
    await expect(client.request('GET', '/api/v1/namespaces/shop/sidecarprofiles')).rejects.toMatchObject({ status: 404 });

    fake.uninstallSidecarProfileCrd();
    await expect(client.request('GET', SIDECAR_PROFILES_PATH)).rejects.toMatchObject({ status: 404 });
  });
});
