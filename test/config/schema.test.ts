import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { BUILTIN_CONFIG_PATH, parseConfigText, revisionOf } from '../../src/config/load.js';

const errorsOf = (yaml: string) => {
  const r = parseConfigText(yaml, 'cfg.yaml');
  if (r.ok) throw new Error('expected the config to be refused');
  return r.errors;
};

describe('config validation', () => {
  it('accepts the example config and fills defaults', () => {
    const r = parseConfigText(readFileSync(BUILTIN_CONFIG_PATH, 'utf8'), 'example.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.compiled.config.profiles['log-shipper']!.containers[0]!.name).toBe('log-shipper');
    expect(r.compiled.keys.status).toBe('sidecar-injector.io/status');
  });

  it('an empty file is a valid config with the documented defaults', () => {
    const r = parseConfigText('', 'empty.yaml');
    expect(r.ok && r.compiled.config).toMatchObject({
      annotationPrefix: 'sidecar-injector.io',
      policy: 'opt-in',
      excludeNamespaces: ['kube-system', 'kube-public', 'kube-node-lease'],
      onConflict: 'skip',
      allowPodOptOut: true,
    });
  });

  it('names the path of every problem', () => {
    const errors = errorsOf(`
policy: sometimes
defaultProfiles: [missing]
profiles:
  log-shipper:
    containers:
      - name: agent
        imagePullPolcy: Always
        resources: { requests: { cpu: lots } }
        volumeMounts: [{ name: nowhere, mountPath: /x }]
      - name: agent
        image: a:1
        ports: [{ containerPort: 70000 }]
    appVolumeMounts: [{ name: nowhere, mountPath: /y }]
    volumes: [{ name: v }]
`);
    expect(errors).toEqual(
      expect.arrayContaining([
        'cfg.yaml: policy: must be one of: opt-in, opt-out',
        'cfg.yaml: profiles.log-shipper.containers[0].image: required',
        'cfg.yaml: profiles.log-shipper.containers[0].imagePullPolcy: unknown field (did you mean imagePullPolicy?)',
        'cfg.yaml: profiles.log-shipper.containers[0].resources.requests.cpu: must be a Kubernetes quantity such as 100m, 64Mi or 1',
        'cfg.yaml: profiles.log-shipper.containers[1].ports[0].containerPort: must be a port number (1-65535)',
      ]),
    );
  });

  it('checks what spans fields once the shapes are right', () => {
    const errors = errorsOf(`
defaultProfiles: [missing]
profiles:
  p:
    containers:
      - { name: agent, image: a:1, volumeMounts: [{ name: nowhere, mountPath: /x }], resources: { requests: { memory: 1Gi }, limits: { memory: 1Mi } } }
      - { name: agent, image: a:1 }
    appVolumeMounts: [{ name: nowhere, mountPath: /y }]
    volumes: [{ name: v }]
`);
    expect(errors).toEqual([
      'cfg.yaml: defaultProfiles[0]: no profile named "missing"',
      'cfg.yaml: profiles.p.volumes[0]: must have exactly one volume source (e.g. emptyDir: {})',
      'cfg.yaml: profiles.p.containers[0].volumeMounts[0].name: names no volume of this profile: "nowhere"',
      'cfg.yaml: profiles.p.containers[0].resources.requests.memory: request 1Gi exceeds limit 1Mi',
      'cfg.yaml: profiles.p.containers[1].name: duplicate container name "agent"',
      'cfg.yaml: profiles.p.appVolumeMounts[0].name: names no volume of this profile: "nowhere"',
    ]);
  });

  it('checks selectors, lists and types wherever they are', () => {
    expect(
      errorsOf(`
neverInjectSelector:
  - matchLabels: { app: 1 }
  - matchExpressions: [{ key: app, operator: Near }, { operator: In }]
alwaysInjectSelector: {}
excludeNamespaces: kube-system
allowPodOptOut: "no"
profiles:
  p:
    nativeSidecar: 1
    containers: { name: a }
    volumes: [{ name: Bad_Name, emptyDir: {} }, 3]
    initContainers: [{ name: i, image: i, ports: [{ containerPort: 0 }, { containerPort: 80, protocol: HTTP }] }]
  Bad Name: {}
`),
    ).toEqual([
      'cfg.yaml: excludeNamespaces: must be a list, not a string',
      'cfg.yaml: neverInjectSelector[0].matchLabels.app: must be a string',
      'cfg.yaml: neverInjectSelector[1].matchExpressions[0].operator: must be one of: In, NotIn, Exists, DoesNotExist',
      'cfg.yaml: neverInjectSelector[1].matchExpressions[1].key: required',
      'cfg.yaml: alwaysInjectSelector: must be a list, not a mapping',
      'cfg.yaml: allowPodOptOut: must be a boolean',
      'cfg.yaml: profiles.p.nativeSidecar: must be true, false or auto',
      'cfg.yaml: profiles.p.containers: must be a list, not a mapping',
      'cfg.yaml: profiles.p.initContainers[0].ports[0].containerPort: must be a port number (1-65535)',
      'cfg.yaml: profiles.p.initContainers[0].ports[1].protocol: must be one of: TCP, UDP, SCTP',
      'cfg.yaml: profiles.p.volumes[0].name: must be a DNS label (lower case letters, digits and -)',
      'cfg.yaml: profiles.p.volumes[1]: must be a mapping, not a number',
      'cfg.yaml: profiles.Bad Name: profile names must be lower case letters, digits, -, _ and .',
    ]);
  });

  it('injects containers and volumes exactly as written, key order included', () => {
    const r = parseConfigText('profiles:\n  p:\n    containers: [{ image: a:1, name: a, args: [x] }]\n', 'k.yaml');
    expect(r.ok && Object.keys(r.compiled.config.profiles.p!.containers[0]!)).toEqual(['image', 'name', 'args']);
  });

  it('reports YAML syntax errors with line and column', () => {
    expect(errorsOf('policy: opt-in\npolicy: opt-out\n')).toEqual(['cfg.yaml:2:1: invalid YAML: Map keys must be unique']);
  });

  it('refuses unknown top-level settings and a non-mapping root', () => {
    expect(errorsOf('polcy: opt-in')).toEqual(['cfg.yaml: polcy: unknown field (did you mean policy?)']);
    expect(errorsOf('zzz: 1')).toEqual(['cfg.yaml: zzz: unknown field']);
    expect(errorsOf('- a')).toEqual(['cfg.yaml: (root): must be a mapping of settings']);
  });

  it('revision hashes the parsed content: formatting and key order do not change it', () => {
    expect(revisionOf({ a: 1, b: [1, 2] })).toBe(revisionOf({ b: [1, 2], a: 1 }));
    expect(revisionOf({ a: 1 })).not.toBe(revisionOf({ a: 2 }));
    const a = parseConfigText('policy: opt-in # comment\n', 'a');
    const b = parseConfigText('policy:   "opt-in"\n', 'b');
    expect(a.ok && b.ok && a.compiled.revision === b.compiled.revision).toBe(true);
  });

  it('checks every nested core/v1 field, naming the path and the nearest valid field', () => {
    const errors = errorsOf(`
profiles:
  log-shipper:
    containers:
      - name: agent
        image: a:1
        volumeMounts: [{ name: logs, mountPath: /logs, readonly: true }]
        resources: { request: { cpu: 10m } }
        securityContext: { allowPrivilegeEscalaton: false, capabilities: { drop: ALL } }
        readinessProbe: { httpGet: { port: 80, pth: /ready }, periodSeconds: "10" }
        env: [{ name: A, valueFrom: { fieldRef: { feildPath: spec.nodeName } } }, { name: B, value: 1 }]
        lifecycle: { preStop: { exec: { command: [sleep, 5] }, sleep: { seconds: 5, extra: 1 } } }
    initContainers:
      - name: setup
        image: a:1
        envFrom: [{ configMapRef: { nmae: x } }]
    volumes:
      - name: logs
        emptyDir: { medium: Memory, sizelimit: 64Mi }
    appVolumeMounts: [{ name: logs, mountPath: /logs, subpath: x }]
`);
    const at = 'cfg.yaml: profiles.log-shipper.';
    expect(errors).toEqual([
      `${at}containers[0].volumeMounts[0].readonly: unknown field (did you mean readOnly?)`,
      `${at}containers[0].resources.request: unknown field (did you mean requests?)`,
      `${at}containers[0].securityContext.allowPrivilegeEscalaton: unknown field (did you mean allowPrivilegeEscalation?)`,
      `${at}containers[0].securityContext.capabilities.drop: must be a list, not a string`,
      `${at}containers[0].readinessProbe.httpGet.pth: unknown field (did you mean path?)`,
      `${at}containers[0].readinessProbe.periodSeconds: must be a number, not a string`,
      `${at}containers[0].env[0].valueFrom.fieldRef.feildPath: unknown field (did you mean fieldPath?)`,
      `${at}containers[0].env[1].value: must be a string, not a number`,
      `${at}containers[0].lifecycle.preStop.exec.command[1]: must be a string, not a number`,
      `${at}containers[0].lifecycle.preStop.sleep.extra: unknown field`,
      `${at}initContainers[0].envFrom[0].configMapRef.nmae: unknown field (did you mean name?)`,
      `${at}volumes[0].emptyDir.sizelimit: unknown field (did you mean sizeLimit?)`,
      `${at}appVolumeMounts[0].subpath: unknown field (did you mean subPath?)`,
    ]);
  });

  it('leaves quantities given as numbers and null fields alone', () => {
    const r = parseConfigText(`
profiles:
  p:
    containers:
      - name: a
        image: a:1
        resources: { limits: { cpu: 1, memory: 64Mi } }
        workingDir: null
`, 'cfg.yaml');
    expect(r.ok ? [] : r.errors).toEqual([]);
  });
});
