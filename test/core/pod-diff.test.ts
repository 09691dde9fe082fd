/**
 * `audit --diff`'s pure part (issue 21): strip what the injector added, by the
 * status annotation, then inject again with the same core as the webhook.
 * Over generated pods and configs (fast-check, seeded): strip then re-inject
 * gives back exactly the webhook's pod for the same config, so the diff of a
 * pod injected by the config in force is empty; and the cases a user meets:
 * an image bump, a missed pod, fields the API server set, parts edited after
 * admission.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { nextPod, strip } from '../../src/core/pod-diff.js';
import { config, namespaceLabels, pod, server } from '../helpers/arbitraries.js';
import { compile, TEST_CONFIG_YAML } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';

const SEED = Number(process.env.PROPERTY_SEED ?? 20261130);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);
const STATUS = 'sidecar-injector.io/status';
const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('strip, then inject again (fast-check)', () => {
  it('gives back exactly the pod the webhook made, and no change, for every injected pod', () => {
    let injected = 0;
    fc.assert(
      fc.property(pod, config, server, namespaceLabels, (p, cfg, srv, labels) => {
        const ctx = { namespace: 'shop', namespaceLabels: labels, server: srv };
        const first = admitPod(p, ctx, cfg);
        if (first.decision !== 'injected') return;
        injected += 1;
        const stripped = strip(first.pod, cfg.keys.status);
        expect(stripped.ok).toBe(true);
        if (!stripped.ok) return;
        expect(stripped.pod.metadata?.annotations?.[STATUS]).toBeUndefined();
        const again = admitPod(stripped.pod, ctx, cfg);
        expect(again.decision).toBe('injected');
        if (again.decision === 'injected') expect(plain(again.pod)).toEqual(plain(first.pod));
        const next = nextPod(first.pod, ctx, cfg);
        expect(next.kind === 'diff' && next.change.none).toBe(true);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(injected).toBeGreaterThan(RUNS / 10);
  });
});

const ctx = { namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: false } };
const v1 = compile(TEST_CONFIG_YAML);
const v2 = compile(TEST_CONFIG_YAML.replace('registry.example.com/logging/agent:1.0', 'registry.example.com/logging/agent:1.1'));

function injectedWith(cfg: typeof v1, edit: (p: V1Pod) => void = () => undefined): V1Pod {
  const out = admitPod(apiserverPod(edit), ctx, cfg);
  if (out.decision !== 'injected') throw new Error(out.reason);
  return out.pod;
}

describe('what a user meets', () => {
  it('an image bump: only the sidecar\'s image changes; profiles and everything else stay', () => {
    const next = nextPod(injectedWith(v1), ctx, v2);
    if (next.kind !== 'diff') throw new Error(next.kind);
    expect(next.change.none).toBe(false);
    expect(next.change.containers).toEqual({
      added: [],
      removed: [],
      addedValues: [],
      removedValues: [],
      changed: [{ name: 'log-shipper', fields: ['image'], changes: [{ field: 'image', before: 'registry.example.com/logging/agent:1.0', after: 'registry.example.com/logging/agent:1.1' }] }],
    });
    expect(next.change.initContainers).toEqual({ added: [], removed: [], addedValues: [], removedValues: [], changed: [] });
    expect(next.change.volumes).toEqual({ added: [], removed: [], addedValues: [], removedValues: [], changed: [] });
    expect(next.change.appMounts).toEqual([]);
    expect(next.change.profiles).toEqual({ before: ['log-shipper'], after: ['log-shipper'] });
  });

  it('a missed pod shows the whole injection', () => {
    const missed = apiserverPod();
    const next = nextPod(missed, ctx, v1);
    if (next.kind !== 'diff') throw new Error(next.kind);
    expect(next.change.containers.added).toEqual(['log-shipper']);
    expect(next.change.volumes.added).toEqual(['app-logs']);
    // The added parts whole, as the next pod has them.
    expect(next.change.containers.addedValues).toEqual([next.next.containers.find((c) => c.name === 'log-shipper')]);
    expect(next.change.containers.addedValues[0]).toMatchObject({ image: 'registry.example.com/logging/agent:1.0', ports: [{ containerPort: 2020 }] });
    expect(next.change.volumes.addedValues).toEqual([{ name: 'app-logs', emptyDir: {} }]);
    expect(next.change.appMounts).toEqual([
      {
        container: 'web',
        added: ['app-logs:/var/log/app'],
        removed: [],
        addedValues: [{ name: 'app-logs', mountPath: '/var/log/app' }],
        removedValues: [],
        changes: [{ field: 'volumeMounts', before: missed.spec!.containers[0]!.volumeMounts, after: next.next.containers[0]!.volumeMounts }],
      },
    ]);
    expect(next.change.profiles).toEqual({ before: [], after: ['log-shipper'] });
  });

  it('fields the API server and the kubelet set never show: status, nodeName, defaults, the token volume\'s name', () => {
    const running = injectedWith(v1);
    running.spec!.nodeName = 'node-1';
    running.spec!.schedulerName = 'default-scheduler';
    running.spec!.enableServiceLinks = true;
    running.status = { phase: 'Running', podIP: '10.0.0.7', containerStatuses: [{ name: 'web', ready: true, restartCount: 0, image: 'nginx', imageID: 'x', containerID: 'c' }] };
    const next = nextPod(running, ctx, v1);
    expect(next.kind === 'diff' && next.change.none).toBe(true);
  });

  it('parts edited after admission are reported, not diffed', () => {
    const running = injectedWith(v1);
    running.spec!.containers = running.spec!.containers.filter((c) => c.name !== 'log-shipper');
    expect(nextPod(running, ctx, v2)).toEqual({ kind: 'edited', reason: 'injected parts were changed after admission: container log-shipper is gone' });
    const garbled = injectedWith(v1);
    garbled.metadata!.annotations![STATUS] = '{not json';
    expect(nextPod(garbled, ctx, v2)).toEqual({ kind: 'edited', reason: 'the status annotation is not JSON' });
  });

  it('a pod the config no longer injects: its next pod loses everything the injector added', () => {
    const running = injectedWith(v1);
    const optedOut = compile(TEST_CONFIG_YAML.replace('defaultProfiles: [log-shipper]', 'defaultProfiles: [log-shipper]\nneverInjectSelector: [{ matchLabels: { app: web } }]'));
    running.metadata!.labels = { ...running.metadata!.labels, app: 'web' };
    const next = nextPod(running, ctx, optedOut);
    if (next.kind !== 'diff') throw new Error(next.kind);
    expect(next.change.containers.removed).toEqual(['log-shipper']);
    expect(next.change.containers.removedValues).toEqual([running.spec!.containers.find((c) => c.name === 'log-shipper')]);
    expect(next.change.volumes.removed).toEqual(['app-logs']);
    expect(next.change.volumes.removedValues).toEqual([{ name: 'app-logs', emptyDir: {} }]);
    expect(next.change.appMounts.map((m) => [m.container, m.removed, m.removedValues])).toEqual([['web', ['app-logs:/var/log/app'], [{ name: 'app-logs', mountPath: '/var/log/app' }]]]);
    expect(next.change.profiles.after).toEqual([]);
  });

  it('a pod that would now conflict is reported as not injected, with the reason', () => {
    const running = injectedWith(v1);
    const clash = compile(TEST_CONFIG_YAML.replace('containerPort: 2020', 'containerPort: 8080'));
    const next = nextPod(running, ctx, clash);
    expect(next.kind).toBe('not-injected');
  });
});

/**
 * Issue 32: `-o json` carries the values. Each changed field has its value
 * before and after, the same values the table's unified diff prints (taken
 * from the two views it prints, not computed again).
 */
describe('each changed field carries its values before and after', () => {
  const cfg = (edit: (yaml: string) => string) => compile(edit(TEST_CONFIG_YAML));
  const diff = (running: V1Pod, context: typeof ctx, next: typeof v1) => {
    const out = nextPod(running, context, next);
    if (out.kind !== 'diff') throw new Error(out.kind);
    return out;
  };

  it('a container\'s image: the two images, and the same objects the table prints', () => {
    const out = diff(injectedWith(v1), ctx, v2);
    const [change] = out.change.containers.changed;
    expect(change).toEqual({ name: 'log-shipper', fields: ['image'], changes: [{ field: 'image', before: 'registry.example.com/logging/agent:1.0', after: 'registry.example.com/logging/agent:1.1' }] });
    const running = out.running.containers.find((c) => c.name === 'log-shipper')!;
    const next = out.next.containers.find((c) => c.name === 'log-shipper')!;
    expect(change!.changes[0]!.before).toBe(running.image);
    expect(change!.changes[0]!.after).toBe(next.image);
  });

  it('an init container (a native sidecar): image and resources, each with both values', () => {
    const native = (yaml: string) => yaml.replace('  log-shipper:\n    containers:', '  log-shipper:\n    nativeSidecar: true\n    containers:');
    const before = cfg(native);
    const after = cfg((y) => native(y).replace('agent:1.0', 'agent:1.1').replace('limits: { cpu: 200m, memory: 128Mi }', 'limits: { cpu: 300m, memory: 128Mi }'));
    const nativeCtx = { ...ctx, server: { nativeSidecars: true } };
    const running = (() => {
      const o = admitPod(apiserverPod(), nativeCtx, before);
      if (o.decision !== 'injected') throw new Error(o.reason);
      return o.pod;
    })();
    expect(running.spec!.initContainers![0]!.restartPolicy).toBe('Always');
    const out = diff(running, nativeCtx, after);
    expect(out.change.containers.changed).toEqual([]);
    expect(out.change.initContainers).toEqual({
      added: [],
      removed: [],
      addedValues: [],
      removedValues: [],
      changed: [
        {
          name: 'log-shipper',
          fields: ['image', 'resources'],
          changes: [
            { field: 'image', before: 'registry.example.com/logging/agent:1.0', after: 'registry.example.com/logging/agent:1.1' },
            { field: 'resources', before: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } }, after: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '300m', memory: '128Mi' } } },
          ],
        },
      ],
    });
  });

  it('a volume: its source before and after', () => {
    const out = diff(injectedWith(v1), ctx, cfg((y) => y.replace('emptyDir: {}', 'emptyDir: { medium: Memory, sizeLimit: 64Mi }')));
    expect(out.change.volumes).toEqual({
      added: [],
      removed: [],
      addedValues: [],
      removedValues: [],
      changed: [{ name: 'app-logs', fields: ['emptyDir'], changes: [{ field: 'emptyDir', before: {}, after: { medium: 'Memory', sizeLimit: '64Mi' } }] }],
    });
    expect(out.change.containers.changed).toEqual([]);
    expect(out.change.appMounts).toEqual([]);
  });

  it('an app container\'s mounts: the mounts gained and lost whole, and its volumeMounts before and after', () => {
    const moved = cfg((y) => y.replace('appVolumeMounts:\n      - name: app-logs\n        mountPath: /var/log/app', 'appVolumeMounts:\n      - name: app-logs\n        mountPath: /var/log/web\n        readOnly: true'));
    const running = injectedWith(v1);
    const out = diff(running, ctx, moved);
    const token = running.spec!.containers[0]!.volumeMounts!.find((m) => m.name.startsWith('kube-api-access'))!;
    expect(token).toBeDefined();
    expect(out.change.appMounts).toEqual([
      {
        container: 'web',
        added: ['app-logs:/var/log/web'],
        removed: ['app-logs:/var/log/app'],
        addedValues: [{ name: 'app-logs', mountPath: '/var/log/web', readOnly: true }],
        removedValues: [{ name: 'app-logs', mountPath: '/var/log/app' }],
        changes: [
          {
            field: 'volumeMounts',
            before: [token, { name: 'app-logs', mountPath: '/var/log/app' }],
            after: [token, { name: 'app-logs', mountPath: '/var/log/web', readOnly: true }],
          },
        ],
      },
    ]);
    // The app container is reported only through its mounts, never as a changed container.
    expect(out.change.containers.changed).toEqual([]);
  });

  it('a field one side lacks has no value on that side (absent in JSON)', () => {
    const out = diff(injectedWith(v1), ctx, cfg((y) => y.replace('        ports: [{ containerPort: 2020 }]\n', '        ports: [{ containerPort: 2020 }]\n        args: [--verbose]\n')));
    expect(out.change.containers.changed).toEqual([{ name: 'log-shipper', fields: ['args'], changes: [{ field: 'args', after: ['--verbose'] }] }]);
    expect(JSON.parse(JSON.stringify(out.change.containers.changed[0]!.changes[0]))).toEqual({ field: 'args', after: ['--verbose'] });
  });
});
