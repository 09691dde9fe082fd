import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { additivePatch, NonAdditiveChangeError } from '../../src/core/patch.js';
import { apiserverPod, deepFreeze } from '../helpers/fixtures.js';
import { testConfig } from '../helpers/configs.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';
import { podInvariantViolations } from '../helpers/invariants.js';

const ctx = { namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: true } };

function injected(pod: V1Pod, config = testConfig()) {
  const outcome = admitPod(deepFreeze(pod), ctx, config);
  if (outcome.decision !== 'injected') throw new Error(`expected injection, got ${outcome.decision}: ${outcome.reason}`);
  return outcome;
}

/** The patch applied by a second engine must give exactly the pod inject() built. */
function applied(pod: V1Pod, config = testConfig()) {
  const outcome = injected(structuredClone(pod), config);
  const result = applyJsonPatch(pod, outcome.patch);
  expect(result).toEqual(JSON.parse(JSON.stringify(outcome.pod)));
  expect(podInvariantViolations(result)).toEqual([]);
  return { outcome, result };
}

const statusOf = (pod: V1Pod) => JSON.parse(pod.metadata!.annotations!['sidecar-injector.io/status']!) as Record<string, unknown>;

describe('injection of the log-shipper profile', () => {
  it('adds the container, the volume, the app mount and the status, with add operations only', () => {
    const { outcome, result } = applied(apiserverPod());
    expect(outcome.patch.every((op) => op.op === 'add')).toBe(true);
    expect(result.spec!.containers.map((c) => c.name)).toEqual(['web', 'log-shipper']);
    expect(result.spec!.volumes!.map((v) => v.name)).toEqual(['kube-api-access-x7k2p', 'app-logs']);
    expect(result.spec!.containers[0]!.volumeMounts).toEqual([
      { name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
      { name: 'app-logs', mountPath: '/var/log/app' },
    ]);
    expect(statusOf(result)).toEqual({
      profiles: ['log-shipper'],
      containers: ['log-shipper'],
      initContainers: [],
      volumes: ['app-logs'],
      revision: testConfig().revision,
    });
    // Untouched fields survive exactly as sent.
    expect(result.metadata!.ownerReferences).toEqual(apiserverPod().metadata!.ownerReferences);
    expect(result.spec!.tolerations).toEqual(apiserverPod().spec!.tolerations);
  });

  it('is minimal: touches nothing outside what it adds', () => {
    const { outcome } = applied(apiserverPod());
    expect(outcome.patch.map((op) => op.path)).toEqual([
      '/metadata/annotations/sidecar-injector.io~1status',
      '/spec/volumes/1',
      '/spec/containers/0/volumeMounts/1',
      '/spec/containers/1',
    ]);
  });

  it('creates what is missing: no annotations, labels, volumes, initContainers or volumeMounts', () => {
    const bare: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'bare-' },
      spec: { containers: [{ name: 'app', image: 'app:1' }, { name: 'helper', image: 'helper:1' }] },
    };
    const { outcome, result } = applied(bare, testConfig('policy: opt-out\ndefaultProfiles: [log-shipper, proxy]'));
    expect(outcome.patch.map((op) => op.path)).toEqual([
      '/metadata/annotations',
      '/spec/containers/0/volumeMounts',
      '/spec/containers/1/volumeMounts',
      '/spec/containers/2',
      '/spec/initContainers',
      '/spec/volumes',
    ]);
    expect(result.spec!.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([
      ['proxy-init', undefined],
      ['proxy', 'Always'],
    ]);
  });

  it('escapes / and ~ in keys (JSON Pointer) and keeps such keys intact', () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['example.com/a~b'] = 'x';
      p.metadata!.labels!['example.com/c~d'] = 'y';
    });
    const { outcome, result } = applied(pod);
    expect(outcome.patch[0]!.path).toBe('/metadata/annotations/sidecar-injector.io~1status');
    expect(result.metadata!.annotations!['example.com/a~b']).toBe('x');
    expect(result.metadata!.labels!['example.com/c~d']).toBe('y');
  });

  it('never modifies its input (the input is deep-frozen)', () => {
    const pod = apiserverPod();
    const before = JSON.stringify(pod);
    injected(pod);
    expect(JSON.stringify(pod)).toBe(before);
  });

  it('a second run over the injected pod changes nothing', () => {
    const { result } = applied(apiserverPod());
    const again = admitPod(result, ctx, testConfig());
    expect(again.decision).toBe('unchanged');
  });
});

describe('native sidecars and init containers', () => {
  it('places injected init containers and native sidecars before the app init containers', () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'proxy';
      p.spec!.initContainers = [{ name: 'migrate', image: 'migrate:1' }];
    });
    const { outcome, result } = applied(pod);
    expect(result.spec!.initContainers!.map((c) => c.name)).toEqual(['proxy-init', 'proxy', 'migrate']);
    expect(result.spec!.initContainers![1]!.restartPolicy).toBe('Always');
    expect(outcome.patch.filter((op) => op.path.startsWith('/spec/initContainers')).map((op) => op.path)).toEqual([
      '/spec/initContainers/0',
      '/spec/initContainers/1',
    ]);
    expect(statusOf(result)).toMatchObject({ containers: [], initContainers: ['proxy-init', 'proxy'] });
  });
});

describe('conflicts', () => {
  it('a container name already in the pod is a conflict (a sidecar without the status annotation)', () => {
    const pod = apiserverPod((p) => {
      p.spec!.containers.push({ name: 'log-shipper', image: 'mine:1' });
    });
    const out = admitPod(pod, ctx, testConfig());
    expect(out.decision).toBe('conflict');
    expect(out.reason).toContain('container name "log-shipper" is used twice');
    expect(out.warnings.join()).toContain('skipped');
  });

  it('a containerPort already used by the app is a conflict; with onConflict deny it is denied', () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'metrics';
    });
    expect(admitPod(pod, ctx, testConfig()).decision).toBe('conflict');
    const out = admitPod(pod, ctx, testConfig('onConflict: deny'));
    expect(out.decision).toBe('denied');
    expect(out.reason).toContain('containerPort 8080/TCP');
  });

  it('a hostNetwork pod is checked the same way', () => {
    const pod = apiserverPod((p) => {
      p.spec!.hostNetwork = true;
      p.spec!.containers[0]!.ports = [{ containerPort: 2020, hostPort: 2020 }];
    });
    expect(admitPod(pod, ctx, testConfig()).decision).toBe('conflict');
  });

  it('a volume name or mount path already in use is a conflict', () => {
    const vol = apiserverPod((p) => {
      p.spec!.volumes!.push({ name: 'app-logs', emptyDir: {} });
    });
    expect(admitPod(vol, ctx, testConfig()).reason).toContain('volume name "app-logs" is used twice');
    const path = apiserverPod((p) => {
      p.spec!.volumes!.push({ name: 'logs', emptyDir: {} });
      p.spec!.containers[0]!.volumeMounts!.push({ name: 'logs', mountPath: '/var/log/app' });
    });
    expect(admitPod(path, ctx, testConfig()).reason).toContain('mounts two volumes at /var/log/app');
  });

  it('problems the pod already had are not blamed on injection', () => {
    const pod = apiserverPod((p) => {
      p.spec!.containers.push({ name: 'dup', image: 'x', ports: [{ containerPort: 9000 }] }, { name: 'dup2', image: 'x', ports: [{ containerPort: 9000 }] });
    });
    expect(admitPod(pod, ctx, testConfig()).decision).toBe('injected');
  });

  it('two profiles that collide with each other are a conflict', () => {
    const c = testConfig(`
defaultProfiles: [a]
profiles:
  a: { containers: [{ name: agent, image: a:1 }] }
  b: { containers: [{ name: agent, image: b:1 }] }
`);
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'a,b';
    });
    expect(admitPod(pod, ctx, c).decision).toBe('conflict');
  });
});

describe('overrides', () => {
  const withAnnotations = (a: Record<string, string>) =>
    apiserverPod((p) => {
      Object.assign(p.metadata!.annotations!, a);
    });
  const shipper = (pod: V1Pod) => pod.spec!.containers.find((c) => c.name === 'log-shipper')!;

  it('applies allowed image and resource overrides', () => {
    const { result, outcome } = applied(
      withAnnotations({
        'sidecar-injector.io/log-shipper.image': 'registry.example.com/logging/agent:2.0',
        'sidecar-injector.io/log-shipper.cpu-limit': '500m',
        'sidecar-injector.io/log-shipper.memory-request': '64Mi',
      }),
    );
    expect(outcome.warnings).toEqual([]);
    expect(shipper(result).image).toBe('registry.example.com/logging/agent:2.0');
    expect(shipper(result).resources).toEqual({ requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } });
  });

  it.each([
    ['image', 'evil.io/miner:1', 'registry not allowed'],
    ['image', 'registry.example.com/logging.evil.io/x:1', 'registry not allowed'],
    ['image', 'registry.example.com/logging/agent:1 ; rm', 'not an image reference'],
    ['cpu-limit', 'lots', 'not a quantity'],
    ['memory-request', '1Gi', 'above the limit 128Mi'],
    ['cpu-limit', '1m', 'below the request 10m'],
  ])('refuses %s=%j with a warning and injects the profile value', (suffix, value, why) => {
    const { result, outcome } = applied(withAnnotations({ [`sidecar-injector.io/log-shipper.${suffix}`]: value }));
    expect(outcome.warnings).toHaveLength(1);
    expect(outcome.warnings[0]).toContain(why);
    expect(outcome.warnings[0]!.length).toBeLessThan(120);
    expect(shipper(result).image).toBe('registry.example.com/logging/agent:1.0');
    expect(shipper(result).resources).toEqual({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } });
  });

  describe('an image registry prefix matches at a path boundary', () => {
    const bare = testConfig().config.profiles;
    const config = testConfig(`
profiles:
  log-shipper:
    containers: ${JSON.stringify(bare['log-shipper']!.containers)}
    volumes: [{ name: app-logs, emptyDir: {} }]
    overrides: { imageRegistries: [registry.example.com] }
`);
    it.each([
      ['registry.example.com/logging/agent:2', true],
      ['registry.example.com:5000/agent:2', true],
      ['registry.example.com@sha256:abc', true],
      ['registry.example.com.evil.io/x:1', false],
      ['registry.example.comx/agent:2', false],
    ])('%s: %s', (image, allowed) => {
      const { result, outcome } = applied(withAnnotations({ 'sidecar-injector.io/log-shipper.image': image }), config);
      expect(shipper(result).image).toBe(allowed ? image : 'registry.example.com/logging/agent:1.0');
      expect(outcome.warnings).toEqual(allowed ? [] : [expect.stringContaining('registry not allowed')]);
    });
  });

  it('judges requests against the final limits', () => {
    const { result, outcome } = applied(
      withAnnotations({ 'sidecar-injector.io/log-shipper.memory-limit': '1Gi', 'sidecar-injector.io/log-shipper.memory-request': '512Mi' }),
    );
    expect(outcome.warnings).toEqual([]);
    expect(shipper(result).resources).toMatchObject({ requests: { memory: '512Mi' }, limits: { memory: '1Gi' } });
  });

  it('refuses overrides a profile does not allow and overrides for unknown containers', () => {
    const pod = withAnnotations({
      'sidecar-injector.io/inject': 'proxy',
      'sidecar-injector.io/proxy.image': 'registry.example.com/proxy/proxy:2.0',
      'sidecar-injector.io/proxy.cpu-limit': '1',
      'sidecar-injector.io/ghost.image': 'x:1',
    });
    const { result, outcome } = applied(pod);
    expect(outcome.warnings).toEqual([
      `override proxy.image="registry.example.com/proxy/proxy:2.0" refused (not allowed by the profile), profile value kept`,
      `override proxy.cpu-limit="1" refused (not allowed by the profile), profile value kept`,
      'override for "ghost" ignored: no such injected container',
    ]);
    expect(result.spec!.initContainers![1]!.image).toBe('registry.example.com/proxy/proxy:1.0');
  });
});

describe('additivePatch', () => {
  it('refuses to replace or remove anything', () => {
    expect(() => additivePatch({ a: 1 }, { a: 2 })).toThrow(NonAdditiveChangeError);
    expect(() => additivePatch({ a: 1, b: 2 }, { a: 1 })).toThrow('remove a field at /b');
    expect(() => additivePatch({ l: [1, 2] }, { l: [2] })).toThrow(NonAdditiveChangeError);
  });
  it('escapes ~ and / in added keys', () => {
    expect(additivePatch({ a: {} }, { a: { 'x~/y': 1 } })).toEqual([{ op: 'add', path: '/a/x~0~1y', value: 1 }]);
  });
  it('turns front inserts into adds at their index', () => {
    expect(additivePatch({ l: [{ name: 'x' }] }, { l: [{ name: 'a' }, { name: 'x' }] })).toEqual([{ op: 'add', path: '/l/0', value: { name: 'a' } }]);
  });
});

describe('nativeSidecar against what the server is known to support (SPEC 4)', () => {
  const config = (setting: string) => testConfig(`
profiles:
  p:
    nativeSidecar: ${setting}
    containers: [{ name: agent, image: registry.example.com/agent:1 }]
    volumes: [{ name: v, emptyDir: {} }]
defaultProfiles: [p]
`);
  it.each([
    ['true', true, true, 0],
    ['true', undefined, true, 0],
    ['true', false, false, 1],
    ['auto', true, true, 0],
    ['auto', undefined, false, 0],
    ['auto', false, false, 0],
  ] as const)('nativeSidecar: %s, server support %s: native %s, %i warning(s)', (setting, support, native, warnings) => {
    const outcome = admitPod(apiserverPod(), { namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: support } }, config(setting));
    if (outcome.decision !== 'injected') throw new Error(outcome.reason);
    expect(outcome.pod.spec!.initContainers?.some((c) => c.name === 'agent' && c.restartPolicy === 'Always') ?? false).toBe(native);
    expect(outcome.warnings).toHaveLength(warnings);
  });
});

