/**
 * Behaviour pinned after a mutation run (npm run mutation) showed no test
 * noticed it changing: the service-account token mount, ports of native
 * sidecars against plain init containers, several image registries and
 * their boundaries, override edge values, and a minimal patch.
 */
import { describe, expect, it } from '@jest/globals';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { compile } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';

const TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount';
const ctx = (native: boolean | undefined = true) => ({ namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: native } });

function injected(pod: V1Pod, yaml: string, native?: boolean) {
  const outcome = admitPod(pod, ctx(native), compile(yaml));
  if (outcome.decision !== 'injected') throw new Error(`${outcome.decision}: ${outcome.reason}`);
  // The patch applied by a second engine gives exactly the pod inject() built.
  expect(applyJsonPatch(pod, outcome.patch)).toEqual(JSON.parse(JSON.stringify(outcome.pod)));
  return outcome;
}
const named = (pod: V1Pod, name: string): V1Container => [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].find((c) => c.name === name)!;
const tokenMounts = (c: V1Container) => (c.volumeMounts ?? []).filter((m) => m.mountPath === TOKEN);

const PROFILES = `
defaultProfiles: [agent]
profiles:
  agent:
    containers: [{ name: agent, image: registry.example.com/agent:1 }]
    initContainers: [{ name: setup, image: registry.example.com/setup:1 }]
  native:
    nativeSidecar: true
    containers: [{ name: proxy, image: registry.example.com/proxy:1, ports: [{ containerPort: 15001 }] }]
  hidden:
    containers:
      - name: hidden
        image: registry.example.com/hidden:1
        volumeMounts: [{ name: blank, mountPath: ${TOKEN} }]
    volumes: [{ name: blank, emptyDir: {} }]
`;

describe('the service-account token mount on injected containers', () => {
  it("every injected container and init container gets the app's token volume at the path, readOnly, last", () => {
    const { pod } = injected(apiserverPod(), PROFILES);
    for (const name of ['agent', 'setup']) expect(tokenMounts(named(pod, name))).toEqual([{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: TOKEN }]);
    expect(named(pod, 'agent').volumeMounts!.at(-1)!.mountPath).toBe(TOKEN);
  });

  it('native sidecars too; a container with its own mount at the path is left as it is', () => {
    const pod = apiserverPod((p) => (p.metadata!.annotations!['sidecar-injector.io/inject'] = 'native,hidden'));
    const out = injected(pod, PROFILES).pod;
    expect(tokenMounts(named(out, 'proxy'))).toHaveLength(1);
    expect(tokenMounts(named(out, 'hidden'))).toEqual([{ name: 'blank', mountPath: TOKEN }]);
  });

  it.each([
    ['automountServiceAccountToken: false', (p: V1Pod) => (p.spec!.automountServiceAccountToken = false)],
    ['no kube-api-access volume', (p: V1Pod) => (p.spec!.volumes = p.spec!.volumes!.filter((v) => !v.name.startsWith('kube-api-access-')))],
    ['the volume, but no app container mounts it at the path', (p: V1Pod) => (p.spec!.containers[0]!.volumeMounts = [])],
    ['the app mounts another volume at the path', (p: V1Pod) => (p.spec!.containers[0]!.volumeMounts = [{ name: 'own', mountPath: TOKEN }])],
  ])('none when %s', (_what, change) => {
    const pod = apiserverPod(change);
    if (change.toString().includes("'own'")) pod.spec!.volumes!.push({ name: 'own', emptyDir: {} });
    expect(tokenMounts(named(injected(pod, PROFILES).pod, 'agent'))).toEqual([]);
  });

  it('the first kube-api-access-* volume names the mount, as the plugin picks it', () => {
    const pod = apiserverPod((p) => {
      p.spec!.volumes!.unshift({ name: 'kube-api-access-aaaaa', emptyDir: {} });
      p.spec!.containers[0]!.volumeMounts!.push({ name: 'kube-api-access-aaaaa', mountPath: '/other' });
      p.spec!.containers[0]!.volumeMounts![0] = { name: 'kube-api-access-aaaaa', readOnly: true, mountPath: TOKEN };
    });
    expect(tokenMounts(named(injected(pod, PROFILES).pod, 'agent'))[0]!.name).toBe('kube-api-access-aaaaa');
  });
});

describe('ports: native sidecars share the port space, plain init containers do not', () => {
  it("a native sidecar on an app container's port is a conflict", () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'native';
      p.spec!.containers[0]!.ports = [{ containerPort: 15001, protocol: 'TCP' }];
    });
    const outcome = admitPod(pod, ctx(true), compile(PROFILES));
    expect(outcome.decision).toBe('conflict');
    expect(outcome.reason).toContain('containerPort 15001/TCP');
  });

  it('a plain init container may use a port an app container uses: they never run together', () => {
    const yaml = `${PROFILES}\n  init-port:\n    initContainers: [{ name: warm, image: registry.example.com/warm:1, ports: [{ containerPort: 80 }] }]\n`;
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'init-port';
      p.spec!.containers[0]!.ports = [{ containerPort: 80, protocol: 'TCP' }];
    });
    expect(admitPod(pod, ctx(true), compile(yaml)).decision).toBe('injected');
  });

  it('the same port on another protocol is no conflict', () => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'native';
      p.spec!.containers[0]!.ports = [{ containerPort: 15001, protocol: 'UDP' }];
    });
    expect(admitPod(pod, ctx(true), compile(PROFILES)).decision).toBe('injected');
  });
});

describe('nativeSidecar edges', () => {
  it('no warning for a native profile without containers on a server without support', () => {
    const yaml = `defaultProfiles: [p]\nprofiles:\n  p:\n    nativeSidecar: true\n    initContainers: [{ name: setup, image: registry.example.com/setup:1 }]\n`;
    expect(injected(apiserverPod(), yaml, false).warnings).toEqual([]);
  });

  it('restartPolicy: Always written on a profile container is dropped where it is not native', () => {
    const yaml = `defaultProfiles: [p]\nprofiles:\n  p:\n    nativeSidecar: auto\n    containers: [{ name: agent, image: registry.example.com/agent:1, restartPolicy: Always }]\n`;
    const regular = injected(apiserverPod(), yaml, false).pod;
    expect(named(regular, 'agent').restartPolicy).toBeUndefined();
    expect((regular.spec!.initContainers ?? []).some((c) => c.name === 'agent')).toBe(false);
    expect(named(injected(apiserverPod(), yaml, true).pod, 'agent').restartPolicy).toBe('Always');
  });

  it('a profile without volumes adds no volumes list to a pod that has none (the patch stays minimal)', () => {
    const pod = apiserverPod((p) => {
      delete p.spec!.volumes;
      p.spec!.containers[0]!.volumeMounts = [];
    });
    const outcome = injected(pod, `defaultProfiles: [p]\nprofiles:\n  p:\n    containers: [{ name: agent, image: registry.example.com/agent:1 }]\n`);
    expect(outcome.patch.some((op) => op.path.startsWith('/spec/volumes'))).toBe(false);
    expect(outcome.pod.spec!.volumes).toBeUndefined();
  });
});

describe('overrides at their edges', () => {
  const yaml = (registries: string) => `
defaultProfiles: [p]
profiles:
  p:
    containers:
      - name: agent
        image: registry.example.com/agent:1
        resources: { requests: { cpu: 100m, memory: 64Mi }, limits: { cpu: 200m, memory: 128Mi } }
    overrides: { resources: true, imageRegistries: ${registries} }
`;
  const withOverrides = (a: Record<string, string>) => apiserverPod((p) => Object.assign(p.metadata!.annotations!, Object.fromEntries(Object.entries(a).map(([k, v]) => [`sidecar-injector.io/agent.${k}`, v]))));
  const agent = (a: Record<string, string>, registries = '[registry.example.com/]') => {
    const outcome = injected(withOverrides(a), yaml(registries));
    return { c: named(outcome.pod, 'agent'), warnings: outcome.warnings };
  };

  it('several registries: an image from any of them is allowed', () => {
    expect(agent({ image: 'mirror.example.org/agent:2' }, '[registry.example.com/, mirror.example.org/]').c.image).toBe('mirror.example.org/agent:2');
    expect(agent({ image: 'registry.example.com/agent:2' }, '[registry.example.com/, mirror.example.org/]').c.image).toBe('registry.example.com/agent:2');
  });

  it('a prefix ending in ":" admits tags of that repository only', () => {
    expect(agent({ image: 'registry.example.com/agent:2' }, '["registry.example.com/agent:"]').c.image).toBe('registry.example.com/agent:2');
    expect(agent({ image: 'registry.example.com/agentx:2' }, '["registry.example.com/agent:"]').c.image).toBe('registry.example.com/agent:1');
  });

  it('an image reference of 512 characters is taken, 513 refused; long values are shortened in the warning', () => {
    const at = (n: number) => `registry.example.com/${'a'.repeat(n - 'registry.example.com/'.length)}`;
    expect(agent({ image: at(512) }).c.image).toBe(at(512));
    const refused = agent({ image: at(513) });
    expect(refused.c.image).toBe('registry.example.com/agent:1');
    expect(refused.warnings[0]).toContain(`${at(513).slice(0, 39)}…`);
    expect(refused.warnings[0]!.length).toBeLessThan(120);
  });

  it('a request equal to the final limit is fine; the untouched resource keeps its values', () => {
    const { c, warnings } = agent({ 'cpu-request': '200m' });
    expect(warnings).toEqual([]);
    expect(c.resources).toEqual({ requests: { cpu: '200m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } });
  });

  it('a limit equal to the request is fine; one below it is refused', () => {
    expect(agent({ 'memory-limit': '64Mi' }).c.resources!.limits!.memory).toBe('64Mi');
    const below = agent({ 'memory-limit': '32Mi' });
    expect(below.c.resources!.limits!.memory).toBe('128Mi');
    expect(below.warnings[0]).toContain('below the request 64Mi');
  });

  it('overrides on a container without resources create them; none asked leaves the container as the profile has it', () => {
    const bare = `defaultProfiles: [p]\nprofiles:\n  p:\n    containers: [{ name: agent, image: registry.example.com/agent:1 }]\n    overrides: { resources: true }\n`;
    const out = injected(withOverrides({ 'cpu-limit': '1' }), bare);
    expect(named(out.pod, 'agent').resources).toEqual({ limits: { cpu: '1' }, requests: { cpu: '1' } });
    expect(named(injected(apiserverPod(), bare).pod, 'agent').resources).toBeUndefined();
  });
});
