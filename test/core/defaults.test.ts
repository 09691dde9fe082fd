import { describe, expect, it } from '@jest/globals';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { admitPod } from '../../src/core/admit.js';
import { defaultPullPolicy, imageTag, withContainerDefaults } from '../../src/core/defaults.js';
import { compile } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';

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

/**
 * The API server's defaulting of containers and volumes, written here as a
 * table and independently of src/core/defaults.ts (pkg/apis/core/v1/defaults.go).
 */
function apiServerDefaults(pod: V1Pod): V1Pod {
  const out = structuredClone(pod);
  const probe = (p?: V1Probe) => {
    if (!p) return;
    p.timeoutSeconds ||= 1;
    p.periodSeconds ||= 10;
    p.successThreshold ||= 1;
    p.failureThreshold ||= 3;
    if (p.httpGet) {
      p.httpGet.path ||= '/';
      p.httpGet.scheme ||= 'HTTP';
    }
  };
  const container = (c: V1Container) => {
    const image = c.image ?? '';
    const last = image.split('/').pop() ?? '';
    const tagged = last.includes(':') && !last.split('@')[0]!.endsWith(':latest');
    c.imagePullPolicy ||= tagged || image.includes('@') ? 'IfNotPresent' : 'Always';
    c.terminationMessagePath ||= '/dev/termination-log';
    c.terminationMessagePolicy ||= 'File';
    for (const p of c.ports ?? []) p.protocol ||= 'TCP';
    for (const e of c.env ?? []) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion ||= 'v1';
    probe(c.livenessProbe);
    probe(c.readinessProbe);
    probe(c.startupProbe);
    if (c.resources?.limits) c.resources.requests = { ...c.resources.limits, ...c.resources.requests };
  };
  for (const c of [...(out.spec?.containers ?? []), ...(out.spec?.initContainers ?? [])]) container(c);
  for (const v of out.spec?.volumes ?? []) {
    for (const source of [v.secret, v.configMap, v.downwardAPI, v.projected]) if (source) source.defaultMode ??= 420;
  }
  return out;
}

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

describe('injected parts already carry what the API server would default', () => {
  it.each([true, false])('so defaulting after our patch changes nothing (native sidecars: %s), and re-invocation has nothing to do', (native) => {
    const pod = apiserverPod((p) => {
      p.metadata!.annotations!['sidecar-injector.io/inject'] = 'true';
    });
    const outcome = admitPod(pod, { namespace: 'shop', namespaceLabels: undefined, server: { nativeSidecars: native } }, RICH);
    if (outcome.decision !== 'injected') throw new Error(outcome.reason);
    const patched = applyJsonPatch(pod, outcome.patch);
    expect(apiServerDefaults(patched)).toEqual(patched);
    // The pod as received was already defaulted by the API server; only our additions could have changed.
    expect(apiServerDefaults(pod)).toEqual(pod);
  });
});
