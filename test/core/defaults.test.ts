import { describe, expect, it } from '@jest/globals';
import { admitPod } from '../../src/core/admit.js';
import { defaultPullPolicy, imageTag, withContainerDefaults } from '../../src/core/defaults.js';
import { compile } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';
import { apiServerDefaults } from '../fake-apiserver/admission-chain.js';

describe('the image tag kube-apiserver reads for imagePullPolicy', () => {
  it.each([
    ['nginx', 'latest', 'Always'],
    ['nginx:latest', 'latest', 'Always'],
    ['nginx:1.27', '1.27', 'IfNotPresent'],
    ['registry:5000/team/app', 'latest', 'Always'],
    ['registry:5000/team/app:v2', 'v2', 'IfNotPresent'],
    ['app@sha256:0123abcd', '', 'IfNotPresent'],
    ['app:1.0@sha256:0123abcd', '1.0', 'IfNotPresent'],
  ])('%s', (image, tag, policy) => {
    expect(imageTag(image)).toBe(tag);
    expect(defaultPullPolicy(image)).toBe(policy);
  });
});

describe('withContainerDefaults', () => {
  it('fills what is absent and keeps what the profile says', () => {
    const c = withContainerDefaults({ name: 'a', image: 'a:1', imagePullPolicy: 'Always', ports: [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 80 }] });
    expect(c).toMatchObject({ imagePullPolicy: 'Always', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File' });
    expect(c.ports).toEqual([{ containerPort: 53, protocol: 'UDP' }, { containerPort: 80, protocol: 'TCP' }]);
  });
});

const RICH = compile(`
defaultProfiles: [rich]
profiles:
  rich:
    nativeSidecar: auto
    initContainers:
      - name: setup
        image: registry.example.com/setup
    containers:
      - name: agent
        image: registry.example.com/agent:2.1
        ports: [{ containerPort: 9100 }]
        env:
          - name: NODE
            valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
        readinessProbe: { httpGet: { port: 9100 } }
        livenessProbe: { tcpSocket: { port: 9100 }, periodSeconds: 30 }
        resources: { limits: { cpu: 100m, memory: 64Mi } }
        volumeMounts: [{ name: agent-config, mountPath: /etc/agent }, { name: agent-token, mountPath: /var/run/agent }]
    volumes:
      - name: agent-config
        configMap: { name: agent }
      - name: agent-token
        secret: { secretName: agent-token }
`);

const EVERY_DEFAULTED_PART = compile(`
defaultProfiles: [all]
profiles:
  all:
    containers:
      - name: agent
        image: registry.example.com/agent@sha256:0123abcd
        ports: [{ containerPort: 9100 }, { containerPort: 9101, protocol: UDP }]
        env:
          - name: NODE
            valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
          - name: POD
            valueFrom: { fieldRef: { apiVersion: v1, fieldPath: metadata.name } }
          - name: PLAIN
            value: x
        startupProbe: { httpGet: { port: 9100, path: /started }, failureThreshold: 30 }
        readinessProbe: { exec: { command: ["true"] } }
        lifecycle:
          postStart: { httpGet: { port: 9100 } }
          preStop: { exec: { command: [sleep, "5"] } }
        resources: { requests: { memory: 32Mi }, limits: { cpu: 100m } }
        volumeMounts:
          - { name: info, mountPath: /etc/info }
          - { name: bundle, mountPath: /etc/bundle }
          - { name: host, mountPath: /host }
          - { name: scratch, mountPath: /scratch }
    volumes:
      - name: info
        downwardAPI: { items: [{ path: labels, fieldRef: { fieldPath: metadata.labels } }] }
      - name: bundle
        projected: { sources: [{ configMap: { name: ca } }] }
      - name: host
        hostPath: { path: /var/log }
      - name: scratch
        emptyDir: {}
`);

/** Our patch applied, as the API server decodes it (with defaulting). */
function injectedAndDefaulted(config: typeof RICH, native: boolean) {
  const pod = apiserverPod((p) => {
    p.metadata!.annotations!['sidecar-injector.io/inject'] = 'true';
  });
  const outcome = admitPod(pod, { namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: native } }, config);
  if (outcome.decision !== 'injected') throw new Error(outcome.reason);
  return { pod, patched: applyJsonPatch(pod, outcome.patch) };
}

describe('injected parts already carry what the API server would default, so re-invocation has nothing to do', () => {
  it.each([true, false])('a rich profile (native sidecars: %s)', (native) => {
    const { pod, patched } = injectedAndDefaulted(RICH, native);
    expect(apiServerDefaults(patched)).toEqual(patched);
    // The pod as received was already defaulted by the API server; only our additions could have changed.
    expect(apiServerDefaults(pod)).toEqual(pod);
  });

  it.each([true, false])('every kind of defaulted field (native sidecars: %s)', (native) => {
    const { patched } = injectedAndDefaulted(EVERY_DEFAULTED_PART, native);
    expect(apiServerDefaults(patched)).toEqual(patched);
    const agent = [...(patched.spec!.initContainers ?? []), ...patched.spec!.containers].find((c) => c.name === 'agent')!;
    // What the profile said stays as it said it.
    expect(agent.imagePullPolicy).toBe('IfNotPresent');
    expect(agent.startupProbe).toMatchObject({ failureThreshold: 30, httpGet: { path: '/started', scheme: 'HTTP' } });
    expect(agent.resources).toEqual({ requests: { memory: '32Mi', cpu: '100m' }, limits: { cpu: '100m' } });
    expect(agent.env![2]).toEqual({ name: 'PLAIN', value: 'x' });
    expect(patched.spec!.volumes!.find((v) => v.name === 'scratch')).toEqual({ name: 'scratch', emptyDir: {} });
  });
});
