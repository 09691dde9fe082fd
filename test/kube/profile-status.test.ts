/**
 * The SidecarProfile status writer against the fake API server, whose
 * SidecarProfiles have the status subresource as apiextensions-apiserver
 * serves it (a status write never moves metadata.generation, a spec write
 * does; a patch's resourceVersion is a precondition). Writes are counted:
 * one per change of the condition, none when nothing changed.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { startCluster, type ClusterFeatures } from '../../src/cli/cluster.js';
import type { CompiledConfig, Profile } from '../../src/core/config.js';
import { createMetrics } from '../../src/ops/metrics.js';
import type { TenantReason } from '../../src/core/tenant-profile.js';
import type { KubeClient } from '../../src/kube/client.js';
import { NamespaceCache } from '../../src/kube/namespaces.js';
import { boundMessage, MESSAGE_MAX, nextConditions, ProfileStatusWriter, type StatusWriteResult } from '../../src/kube/profile-status.js';
import { SidecarProfileIndex, type StoredCondition } from '../../src/kube/sidecar-profiles.js';
import type { FakeApiServer } from '../fake-apiserver/server.js';
import { testConfig } from '../helpers/configs.js';
import { restrictedProfile } from '../helpers/tenant-profiles.js';
import { quietLogger, startFake, until } from './helpers.js';

const tenants = (maxCpu = '500m') => `
tenantProfiles:
  enabled: true
  namespaceSelector: { matchLabels: { tenants: allowed } }
  allowedRegistries: [registry.example.com/team/]
  maxResources: { cpu: ${maxCpu}, memory: 256Mi }
`;
const ALLOWED = { tenants: 'allowed' };

interface Replica {
  index: SidecarProfileIndex;
  namespaces: NamespaceCache;
  writer: ProfileStatusWriter;
  results: StatusWriteResult[];
  verdicts: () => Record<TenantReason, number> | undefined;
  setConfig(config: CompiledConfig): void;
  stop(): void;
}

let fake: FakeApiServer | undefined;
let replicas: Replica[] = [];
let cluster: ClusterFeatures | undefined;

afterEach(async () => {
  for (const r of replicas) r.stop();
  replicas = [];
  cluster?.stop();
  cluster = undefined;
  await fake?.stop();
  fake = undefined;
});

/** What `serve` runs for one replica: namespace cache, index, writer, wired as src/cli/cluster.ts wires them. */
function replica(client: KubeClient, initial: CompiledConfig, extra: { resyncMs?: number; now?: () => Date } = {}): Replica {
  let config = initial;
  let verdicts: Record<TenantReason, number> | undefined;
  const results: StatusWriteResult[] = [];
  const namespaces = new NamespaceCache({
    client,
    logger: quietLogger,
    events: { synced: () => undefined, watchRestart: () => undefined, lookup: () => undefined },
    backoffInitialMs: 50,
    backoffMaxMs: 200,
  });
  const index = new SidecarProfileIndex({ client, logger: quietLogger, events: { synced: () => undefined, watchRestart: () => undefined }, backoffInitialMs: 50, backoffMaxMs: 200 });
  const writer = new ProfileStatusWriter({
    client,
    logger: quietLogger,
    index,
    config: () => config,
    namespaceLabels: (ns) => namespaces.lookup(ns),
    onWrite: (r) => results.push(r),
    onVerdicts: (c) => (verdicts = c),
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    resyncMs: extra.resyncMs,
    now: extra.now,
  });
  const unsubscribe = namespaces.onChange((ns) => writer.namespaceChanged(ns));
  void namespaces.run();
  void index.run();
  writer.start();
  const r: Replica = {
    index,
    namespaces,
    writer,
    results,
    verdicts: () => verdicts,
    setConfig: (c) => {
      config = c;
      writer.configChanged();
    },
    stop: () => {
      unsubscribe();
      writer.stop();
      index.stop();
      namespaces.stop();
    },
  };
  replicas.push(r);
  return r;
}

type Stored = { metadata: { generation: number; resourceVersion: string }; status?: { conditions?: StoredCondition[] } };
const stored = (ns: string, name: string) => fake!.get('sidecarprofiles', `${ns}/${name}`) as Stored | undefined;
const accepted = (ns: string, name: string) => stored(ns, name)?.status?.conditions?.find((c) => c.type === 'Accepted');
const statusPatches = (ns?: string, name?: string) =>
  fake!.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status') && (!name || r.path === `/apis/sidecar-injector.io/v1alpha1/namespaces/${ns}/sidecarprofiles/${name}/status`));
/** The replica's index holds what the API server holds for the profile (our own writes included). */
const caughtUp = (r: Replica, ns: string, name: string) => r.index.get(ns, name)?.resourceVersion === stored(ns, name)?.metadata.resourceVersion;

async function settled(r: Replica): Promise<void> {
  expect(await r.writer.settled(5000)).toBe(true);
}

function privileged(): Profile {
  const p = restrictedProfile();
  p.containers[0]!.securityContext = { ...p.containers[0]!.securityContext, privileged: true };
  return p;
}

describe('SidecarProfile status: the Accepted condition', () => {
  it('is written once through /status with observedGeneration; nothing more while nothing changes; generation untouched', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const r = replica(started.client, testConfig(tenants()));
    await until('the condition', () => accepted('shop', 'db-proxy') !== undefined);
    expect(accepted('shop', 'db-proxy')).toEqual({
      type: 'Accepted',
      status: 'True',
      reason: 'Accepted',
      message: expect.stringContaining('inside the limits'),
      observedGeneration: 1,
      lastTransitionTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    });
    await settled(r);
    // The status write did not move the generation, and went through the subresource as a merge patch with a precondition.
    expect(stored('shop', 'db-proxy')?.metadata.generation).toBe(1);
    expect(statusPatches()).toHaveLength(1);
    expect(statusPatches()[0]!.contentType).toBe('application/merge-patch+json');
    expect(statusPatches()[0]!.body).toMatchObject({ metadata: { resourceVersion: expect.any(String) } });
    expect(r.results).toEqual(['written']);

    // Everything judged again (a reload of the same config, a namespace relist, the index catching up): no write.
    await until('the index sees the write', () => caughtUp(r, 'shop', 'db-proxy'));
    r.setConfig(testConfig(tenants()));
    r.writer.namespaceChanged(undefined);
    r.writer.namespaceChanged('shop');
    await settled(r);
    expect(statusPatches()).toHaveLength(1);
    expect(r.verdicts()).toEqual({ Accepted: 1, NotServed: 0, Shadowed: 0, Invalid: 0, OutsideLimits: 0 });
  });

  it('says False with the reason and a message naming the field and the rule', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.namespace('other');
    fake.sidecarProfile('shop', 'root', privileged());
    fake.sidecarProfile('shop', 'broken', { containers: [{ image: 'registry.example.com/team/x:1' }] });
    fake.sidecarProfile('shop', 'log-shipper', restrictedProfile());
    fake.sidecarProfile('other', 'db-proxy', restrictedProfile());
    const r = replica(started.client, testConfig(tenants()));
    await until('four conditions', () => ['shop/root', 'shop/broken', 'shop/log-shipper', 'other/db-proxy'].every((k) => accepted(...(k.split('/') as [string, string]))));
    expect(accepted('shop', 'root')).toMatchObject({ status: 'False', reason: 'OutsideLimits', observedGeneration: 1 });
    expect(accepted('shop', 'root')?.message).toBe('spec.containers[0].securityContext.privileged: must be false or unset, not true (rule privileged)');
    expect(accepted('shop', 'broken')).toMatchObject({ status: 'False', reason: 'Invalid', message: expect.stringMatching(/^spec\.containers\[0\]\.name/) });
    expect(accepted('shop', 'log-shipper')).toMatchObject({ status: 'False', reason: 'Shadowed', message: expect.stringContaining('the config has a profile named "log-shipper"') });
    expect(accepted('other', 'db-proxy')).toMatchObject({ status: 'False', reason: 'NotServed', message: 'namespace other is not selected by tenantProfiles.namespaceSelector' });
    await settled(r);
    expect(r.verdicts()).toEqual({ Accepted: 0, NotServed: 1, Shadowed: 1, Invalid: 1, OutsideLimits: 1 });
    expect(statusPatches()).toHaveLength(4);
  });

  it('turns False within 10 s (here in well under 3) when the config tightens the limits, and True again when they loosen', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile()); // cpu limit 500m
    const r = replica(started.client, testConfig(tenants('500m')));
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await until('the index sees the write', () => caughtUp(r, 'shop', 'db-proxy'));
    const acceptedSince = accepted('shop', 'db-proxy')!.lastTransitionTime!;

    const reloaded = Date.now();
    r.setConfig(testConfig(tenants('200m')));
    await until('refused', () => accepted('shop', 'db-proxy')?.status === 'False', 10_000);
    expect(Date.now() - reloaded).toBeLessThan(3000);
    expect(accepted('shop', 'db-proxy')).toMatchObject({
      reason: 'OutsideLimits',
      message: 'spec.containers[0].resources.limits.cpu: 500m is above the ceiling 200m (rule maxResources)',
      observedGeneration: 1,
    });
    expect(Date.parse(accepted('shop', 'db-proxy')!.lastTransitionTime!)).toBeGreaterThanOrEqual(Date.parse(acceptedSince));
    await until('the index sees the write', () => caughtUp(r, 'shop', 'db-proxy'));

    r.setConfig(testConfig(tenants('1')));
    await until('accepted again', () => accepted('shop', 'db-proxy')?.status === 'True', 10_000);
    await settled(r);
    expect(statusPatches()).toHaveLength(3);
    expect(stored('shop', 'db-proxy')?.metadata.generation).toBe(1);
  });

  it('follows the generation; lastTransitionTime moves only when status does', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const t0 = new Date('2026-03-01T10:00:00.123Z');
    let now = t0;
    const r = replica(started.client, testConfig(tenants()), { now: () => now });
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    expect(accepted('shop', 'db-proxy')?.lastTransitionTime).toBe('2026-03-01T10:00:00Z');

    // A new spec, still inside the limits: generation 2 observed, same status, same transition time.
    now = new Date('2026-03-01T11:00:00Z');
    const v2 = restrictedProfile();
    v2.containers[0]!.image = 'registry.example.com/team/db-proxy:1.5';
    fake.sidecarProfile('shop', 'db-proxy', v2);
    expect(stored('shop', 'db-proxy')?.metadata.generation).toBe(2);
    await until('generation 2 observed', () => accepted('shop', 'db-proxy')?.observedGeneration === 2);
    expect(accepted('shop', 'db-proxy')).toMatchObject({ status: 'True', lastTransitionTime: '2026-03-01T10:00:00Z' });

    // A spec outside the limits: generation 3, False, a new transition time.
    now = new Date('2026-03-01T12:00:00Z');
    fake.sidecarProfile('shop', 'db-proxy', privileged());
    await until('generation 3 observed', () => accepted('shop', 'db-proxy')?.observedGeneration === 3);
    expect(accepted('shop', 'db-proxy')).toMatchObject({ status: 'False', reason: 'OutsideLimits', lastTransitionTime: '2026-03-01T12:00:00Z' });
    expect(stored('shop', 'db-proxy')?.metadata.generation).toBe(3);
    await settled(r);
    expect(statusPatches()).toHaveLength(3);
  });

  it('follows the namespace labels: a profile leaves and re-enters tenantProfiles.namespaceSelector', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const r = replica(started.client, testConfig(tenants()));
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await until('the namespace watch', () => r.namespaces.synced && caughtUp(r, 'shop', 'db-proxy'));
    const relabelled = Date.now();
    fake.namespace('shop', { tenants: 'no' });
    await until('not served', () => accepted('shop', 'db-proxy')?.reason === 'NotServed', 10_000);
    expect(Date.now() - relabelled).toBeLessThan(3000);
    await until('the index sees the write', () => caughtUp(r, 'shop', 'db-proxy'));
    fake.namespace('shop', ALLOWED);
    await until('served again', () => accepted('shop', 'db-proxy')?.reason === 'Accepted', 10_000);
    // A label change that does not move the verdict writes nothing.
    await until('the index sees the write', () => caughtUp(r, 'shop', 'db-proxy'));
    fake.namespace('shop', { ...ALLOWED, team: 'shop' });
    await until('the relabel seen', () => r.namespaces.labels('shop')?.team === 'shop');
    await settled(r);
    expect(statusPatches()).toHaveLength(3);
  });

  it('on a conflict reads the object again, keeps the conditions of others and writes once', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const ready = { type: 'Ready', status: 'True', reason: 'ByAnother', message: 'another controller', lastTransitionTime: '2026-01-01T00:00:00Z' };
    let raced = false;
    fake.beforeRoute = (req) => {
      if (raced || req.method !== 'PATCH' || !req.path.endsWith('/status')) return;
      raced = true;
      // Another writer gets in first: the stored resourceVersion moves under our patch.
      const found = fake!.get('sidecarprofiles', 'shop/db-proxy')!;
      fake!.put('sidecarprofiles', { ...found, status: { conditions: [ready] } });
    };
    const r = replica(started.client, testConfig(tenants()));
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await settled(r);
    expect(r.results).toEqual(['conflict', 'written']);
    expect(stored('shop', 'db-proxy')?.status?.conditions?.map((c) => c.type)).toEqual(['Ready', 'Accepted']);
    expect(stored('shop', 'db-proxy')?.status?.conditions?.[0]).toEqual(ready);
    expect(fake.requests.filter((q) => q.method === 'GET' && q.path.endsWith('/sidecarprofiles/db-proxy'))).toHaveLength(1);
  });

  it('retries failed writes with backoff until they succeed', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    fake.failures.push({ pattern: /^PATCH .*\/status$/, code: 500 }, { pattern: /^PATCH .*\/status$/, code: 503 });
    const r = replica(started.client, testConfig(tenants()));
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await settled(r);
    expect(r.results).toEqual(['failure', 'failure', 'written']);
  });

  it('keeps a long message within its bound, cut between problems', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    const p = privileged();
    p.containers = Array.from({ length: 40 }, (_, i) => ({ ...structuredClone(p.containers[0]!), name: `c${i}`, ports: [{ containerPort: 1000 + i }] }));
    fake.sidecarProfile('shop', 'many', p);
    replica(started.client, testConfig(tenants()));
    await until('refused', () => accepted('shop', 'many')?.status === 'False');
    const message = accepted('shop', 'many')!.message!;
    expect(Array.from(message).length).toBeLessThanOrEqual(MESSAGE_MAX);
    expect(message).toMatch(/^spec\.containers\[0\]\.securityContext\.privileged: must be false or unset, not true \(rule privileged\); .*; … and \d+ more$/);
  });

  it('is not written for a profile deleted before it is judged again, and its verdict leaves the counts', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'a', restrictedProfile());
    fake.sidecarProfile('shop', 'b', privileged());
    const r = replica(started.client, testConfig(tenants()));
    await until('both', () => accepted('shop', 'a') !== undefined && accepted('shop', 'b') !== undefined);
    fake.deleteSidecarProfile('shop', 'b');
    await until('b gone from the index', () => r.index.get('shop', 'b') === undefined);
    r.setConfig(testConfig(tenants('200m')));
    await until('a refused', () => accepted('shop', 'a')?.status === 'False');
    await settled(r);
    expect(statusPatches('shop', 'b')).toHaveLength(1);
    expect(r.verdicts()).toEqual({ Accepted: 0, NotServed: 0, Shadowed: 0, Invalid: 0, OutsideLimits: 1 });
  });
});

describe('several replicas', () => {
  it('with one config write each change once between them', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const config = testConfig(tenants());
    const a = replica(started.client, config);
    const b = replica(started.client, config);
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await Promise.all([settled(a), settled(b)]);
    expect([...a.results, ...b.results].filter((x) => x === 'written')).toHaveLength(1);

    await until('both indexes see the write', () => caughtUp(a, 'shop', 'db-proxy') && caughtUp(b, 'shop', 'db-proxy'));
    const tight = testConfig(tenants('200m'));
    a.setConfig(tight);
    b.setConfig(tight);
    await until('refused', () => accepted('shop', 'db-proxy')?.status === 'False');
    await Promise.all([settled(a), settled(b)]);
    expect([...a.results, ...b.results].filter((x) => x === 'written')).toHaveLength(2);
  });

  it('holding different configs for a moment do not answer each other\'s writes', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.namespace('elsewhere', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    const a = replica(started.client, testConfig(tenants('500m')));
    const b = replica(started.client, testConfig(tenants('200m')));
    await until('a condition', () => accepted('shop', 'db-proxy') !== undefined);
    await Promise.all([settled(a), settled(b)]);
    await until('both indexes caught up', () => caughtUp(a, 'shop', 'db-proxy') && caughtUp(b, 'shop', 'db-proxy'));
    const before = statusPatches('shop', 'db-proxy').length;
    expect(before).toBeLessThanOrEqual(3);

    // More traffic through both watches: a ping-pong on db-proxy would show by now.
    fake.sidecarProfile('elsewhere', 'other', restrictedProfile());
    await until('other judged', () => accepted('elsewhere', 'other') !== undefined);
    await until('both indexes caught up', () => caughtUp(a, 'elsewhere', 'other') && caughtUp(b, 'elsewhere', 'other'));
    await Promise.all([settled(a), settled(b)]);
    expect(statusPatches('shop', 'db-proxy').length).toBe(before);

    // The replica behind reloads: both agree, and the condition settles on the new config's verdict.
    b.setConfig(testConfig(tenants('500m')));
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    await Promise.all([settled(a), settled(b)]);
  });
});

describe('the condition message and its neighbours', () => {
  const problem = (i: number) => `spec.containers[${i}].securityContext.privileged: must be false or unset, not true (rule privileged)`;

  it('boundMessage leaves short messages alone and cuts long ones between problems, saying how many were left out', () => {
    expect(boundMessage('short')).toBe('short');
    const all = Array.from({ length: 50 }, (_, i) => problem(i));
    const cut = boundMessage(all.join('; '));
    expect(Array.from(cut).length).toBeLessThanOrEqual(MESSAGE_MAX);
    const m = /^(.*); … and (\d+) more$/.exec(cut)!;
    const kept = m[1]!.split('; ');
    expect(kept).toEqual(all.slice(0, kept.length));
    expect(kept.length + Number(m[2])).toBe(50);
    // Exactly at the bound: untouched.
    const exact = 'x'.repeat(MESSAGE_MAX);
    expect(boundMessage(exact)).toBe(exact);
  });

  it('boundMessage cuts a single overlong problem on a code point', () => {
    const cut = boundMessage('😀'.repeat(2000));
    expect(Array.from(cut)).toHaveLength(MESSAGE_MAX);
    expect(cut.endsWith('😀…')).toBe(true);
  });

  it('nextConditions keeps other types and the transition time while the status stays', () => {
    const other = { type: 'Ready', status: 'False', reason: 'X', message: 'y', lastTransitionTime: '2026-01-01T00:00:00Z' };
    const before = { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'm', observedGeneration: 1, lastTransitionTime: '2026-02-01T00:00:00Z' };
    const now = new Date('2026-05-05T05:05:05.555Z');
    const same = nextConditions([before, other], { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'm', observedGeneration: 2 }, now);
    expect(same).toEqual([other, { ...before, observedGeneration: 2 }]);
    const flipped = nextConditions([before, other], { type: 'Accepted', status: 'False', reason: 'OutsideLimits', message: 'n', observedGeneration: 2 }, now);
    expect(flipped[1]).toEqual({ type: 'Accepted', status: 'False', reason: 'OutsideLimits', message: 'n', observedGeneration: 2, lastTransitionTime: '2026-05-05T05:05:05Z' });
  });
});

describe('as serve runs it (startCluster)', () => {
  it('waits for the first list before ready, serves the lookup, writes status, re-judges on configChanged, and exports the metrics', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.namespace('shop', ALLOWED);
    fake.sidecarProfile('shop', 'db-proxy', restrictedProfile());
    let release: () => void = () => undefined;
    fake.holds.push({ pattern: /^GET \/apis\/sidecar-injector\.io\/v1alpha1\/sidecarprofiles$/, until: new Promise<void>((resolve) => (release = resolve)) });
    let config = testConfig(tenants());
    const metrics = createMetrics();
    cluster = startCluster(started.client, {
      flags: { 'no-events': true },
      logger: quietLogger,
      metrics,
      kubeVersion: { major: 1, minor: 31 },
      caPath: '/nonexistent/ca.crt',
      config: () => config,
    });
    await until('the namespace cache', () => cluster!.namespaces.synced);
    expect(cluster.notReady()).toBe('SidecarProfiles not listed');
    expect(cluster.tenantProfiles('shop')).toBeUndefined();
    release();
    await until('ready', () => cluster!.notReady() === undefined);
    expect(cluster.tenantProfiles('shop')?.get('db-proxy')?.generation).toBe(1);
    await until('accepted', () => accepted('shop', 'db-proxy')?.status === 'True');
    expect(await cluster.profileStatus.settled(5000)).toBe(true);

    config = testConfig(tenants('200m'));
    cluster.configChanged();
    await until('refused', () => accepted('shop', 'db-proxy')?.status === 'False', 10_000);
    expect(await cluster.profileStatus.settled(5000)).toBe(true);
    const text = await metrics.registry.metrics();
    expect(text).toContain('sidecar_injector_sidecarprofiles_synced 1');
    expect(text).toContain('sidecar_injector_sidecarprofile_status_writes_total{result="written"} 2');
    expect(text).toContain('sidecar_injector_sidecarprofiles{reason="OutsideLimits"} 1');
    expect(text).toContain('sidecar_injector_sidecarprofiles{reason="Accepted"} 0');
  });

  it('does not hold readiness for SidecarProfiles while tenant profiles are off', async () => {
    const started = await startFake();
    fake = started.fake;
    fake.holds.push({ pattern: /^GET \/apis\/sidecar-injector\.io\/v1alpha1\/sidecarprofiles$/, until: new Promise<void>(() => undefined) });
    cluster = startCluster(started.client, {
      flags: { 'no-events': true },
      logger: quietLogger,
      metrics: createMetrics(),
      kubeVersion: { major: 1, minor: 31 },
      caPath: '/nonexistent/ca.crt',
      config: () => testConfig(),
    });
    await until('ready', () => cluster!.notReady() === undefined);
    expect(cluster.sidecarProfiles.synced).toBe(false);
  });
});
