/**
 * The cases policy mode is held to (issue 23), shared by the CI proof with
 * Kubernetes' own admission code (test/core/policy-admission.test.ts) and the
 * end-to-end proof on a real API server (test/e2e/policy.e2e.ts): the chart's
 * config plus a regular sidecar with an init container, app mounts and
 * selectors; pods for every rule path; generated override annotations.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse } from 'yaml';
import type { V1Pod } from '@kubernetes/client-node';
import { pod } from '../e2e/pods.js';

/** Chart values' `config` on top of the chart's own (the example config, per-pod overrides included). */
export const CONFIG = {
  neverInjectSelector: [{ matchLabels: { team: 'batch' } }],
  alwaysInjectSelector: [{ matchExpressions: [{ key: 'example.com/owner', operator: 'Exists' }] }],
  profiles: {
    exporter: {
      nativeSidecar: false,
      containers: [{ name: 'exporter', image: 'nginx/nginx-prometheus-exporter:1.4.0', ports: [{ name: 'metrics', containerPort: 9113 }] }],
      initContainers: [{ name: 'setup', image: 'busybox:1.36', command: ['sh', '-c', 'true'] }],
      volumes: [{ name: 'exporter-cache', emptyDir: {} }],
      appVolumeMounts: [{ name: 'exporter-cache', mountPath: '/var/cache/exporter', readOnly: true }],
      overrides: { resources: false, imageRegistries: [] },
    },
  },
};

/** CONFIG merged into the chart's default config, as Helm merges values. */
export function chartConfig(): Record<string, unknown> {
  const values = parse(readFileSync(new URL('../../charts/sidecar-injector/values.yaml', import.meta.url), 'utf8')) as { config: Record<string, unknown> & { profiles: Record<string, unknown> } };
  return { ...values.config, ...CONFIG, profiles: { ...values.config.profiles, ...CONFIG.profiles } };
}

const ask = (value: string) => ({ annotations: { 'sidecar-injector.io/inject': value } });

/** [title, pod as a controller sends it, namespace labelled enabled, injected]. */
export const POLICY_CASES: [string, V1Pod, boolean, boolean][] = [
  ['asks for the default profiles', pod('', 'x', ask('true')), false, true],
  ['asks by label', pod('', 'x', { labels: { 'sidecar-injector.io/inject': 'true' } }), false, true],
  ['asks for two profiles, one unknown, one twice', pod('', 'x', ask(' exporter, nope ,log-shipper,exporter')), false, true],
  ['asks for an unknown profile only', pod('', 'x', ask('nope')), false, false],
  ['does not ask', pod('', 'x'), false, false],
  ['does not ask, namespace enabled', pod('', 'x'), true, true],
  ['says no, namespace enabled', pod('', 'x', ask('false')), true, false],
  ['neverInjectSelector wins over asking', pod('', 'x', { labels: { team: 'batch' }, annotations: { 'sidecar-injector.io/inject': 'true' } }), false, false],
  ['alwaysInjectSelector', pod('', 'x', { labels: { 'example.com/owner': 'shop' } }), false, true],
  ['a container name that collides: skipped', { ...pod('', 'x', ask('exporter')), spec: { containers: [{ name: 'exporter', image: 'nginx' }] } }, false, false],
  ['a port that collides: skipped', { ...pod('', 'x', ask('exporter')), spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 9113 }] }] } }, false, false],
  ['has init containers and volumes of its own', { ...pod('', 'x', ask('log-shipper,exporter')), spec: { initContainers: [{ name: 'migrate', image: 'busybox' }], containers: [{ name: 'web', image: 'nginx', volumeMounts: [{ name: 'data', mountPath: '/data' }] }], volumes: [{ name: 'data', emptyDir: {} }] } }, false, true],
  ['overrides: an allowed image, a lowered cpu limit, a memory request above the limit (refused)', pod('', 'x', { annotations: { 'sidecar-injector.io/inject': 'true', 'sidecar-injector.io/log-shipper.image': ' cr.fluentbit.io/fluent/fluent-bit:3.3.0 ', 'sidecar-injector.io/log-shipper.cpu-limit': '150m', 'sidecar-injector.io/log-shipper.memory-request': '1Gi' } }), false, true],
  ['overrides: a registry only by prefix, a limit under the request (it yields), a negative and a garbled quantity', pod('', 'x', { annotations: { 'sidecar-injector.io/inject': 'true', 'sidecar-injector.io/log-shipper.image': 'cr.fluentbit.io/fluentevil/x:1', 'sidecar-injector.io/log-shipper.memory-limit': '16Mi', 'sidecar-injector.io/log-shipper.cpu-request': '-1', 'sidecar-injector.io/log-shipper.cpu-limit': '1e3x' } }), false, true],
  ['overrides: a request in exponent form, the exact profile value, a profile that allows none', pod('', 'x', { annotations: { 'sidecar-injector.io/inject': 'log-shipper,exporter', 'sidecar-injector.io/log-shipper.cpu-request': '1e-2', 'sidecar-injector.io/log-shipper.memory-limit': '128Mi', 'sidecar-injector.io/exporter.image': 'cr.fluentbit.io/fluent/x:1' } }), false, true],
  ['no service-account token', { ...pod('', 'x', ask('true')), spec: { automountServiceAccountToken: false, containers: [{ name: 'web', image: 'nginx' }] } }, false, true],
];

/** Override annotations for the log-shipper profile (which allows resources and one registry), generated. */
export function overrideCases(seed: number, numRuns: number): Record<string, string>[] {
  const value = fc.constantFrom('cr.fluentbit.io/fluent/fluent-bit:3.3.0', 'cr.fluentbit.io/fluent', 'cr.fluentbit.io/fluentd:1', 'docker.io/x', ' cr.fluentbit.io/fluent/a@sha256:00 ', '5m', '10m', '200m', '2', '0.5', '1e3', '64Mi', '128Mi', '1Gi', '-1', '', 'x', '1.5Gi', '.5');
  const key = fc.constantFrom('image', 'cpu-request', 'cpu-limit', 'memory-request', 'memory-limit');
  return fc.sample(fc.dictionary(key.map((k) => `sidecar-injector.io/log-shipper.${k}`), value, { minKeys: 1, maxKeys: 5 }), { seed, numRuns });
}
