/**
 * fast-check arbitraries shared by the property tests: pods as kube-apiserver
 * sends them at mutating admission, configs the loader accepts, server
 * features and namespace labels. Small pools on purpose: generated pods and
 * profiles must collide often.
 */
import fc from 'fast-check';
import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { CompiledConfig } from '../../src/core/config.js';
import { podInvariantViolations } from './invariants.js';

export const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

// Small pools on purpose: generated pods and profiles must collide often.
export const name = fc.oneof(
  fc.constantFrom('app', 'web', 'log-shipper', 'proxy', 'agent', 'setup', 'logs', 'data', 'x'.repeat(63)),
  fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/),
);
export const port = fc.record({ containerPort: fc.constantFrom(1, 80, 2020, 8080, 9100, 15001, 65535), protocol: fc.constantFrom('TCP', 'UDP') }, { requiredKeys: ['containerPort'] });
export const mountPath = fc.constantFrom('/var/log/app', '/data', '/tmp', '/etc/agent', TOKEN_PATH);
export const volumeSource = fc.constantFrom<Omit<V1Volume, 'name'>>({ emptyDir: {} }, { configMap: { name: 'cm' } }, { secret: { secretName: 's' } });
export const volume = fc.record({ name, source: volumeSource }).map(({ name: n, source }) => ({ name: n, ...source }) as V1Volume);
export const metaKey = fc.constantFrom('app', 'team', 'example.com/owner', 'a~b/c~1', 'x.y/z', 'sidecar-injector.io/inject');
export const metaValue = fc.constantFrom('true', 'false', 'log-shipper', 'log-shipper,proxy', 'nope', '', 'web');
export const metaMap = fc.option(fc.dictionary(metaKey, metaValue, { maxKeys: 3 }), { nil: undefined });

export function container(volumes: string[]): fc.Arbitrary<V1Container> {
  const mount = fc.record({ name: volumes.length ? fc.constantFrom(...volumes) : name, mountPath, readOnly: fc.boolean() }, { requiredKeys: ['name', 'mountPath'] });
  return fc.record(
    {
      name,
      image: fc.constantFrom('nginx:1.27', 'registry.example.com/app:1', 'busybox'),
      ports: fc.array(port, { maxLength: 2 }),
      volumeMounts: fc.uniqueArray(mount, { maxLength: 2, selector: (m) => m.mountPath }),
    },
    { requiredKeys: ['name', 'image'] },
  );
}

/** A pod as kube-apiserver sends it at mutating admission: generateName, and usually the token volume. */
export const pod: fc.Arbitrary<V1Pod> = fc
  .record({ volumes: fc.uniqueArray(volume, { maxLength: 3, selector: (v) => v.name }), token: fc.boolean(), automount: fc.constantFrom(undefined, true, false) })
  .chain(({ volumes, token, automount }) => {
    const all = token && automount !== false ? [...volumes.filter((v) => v.name !== 'kube-api-access-ab12c'), { name: 'kube-api-access-ab12c', projected: { sources: [{ serviceAccountToken: { path: 'token' } }], defaultMode: 420 } }] : volumes;
    const names = all.map((v) => v.name);
    return fc
      .record(
        {
          labels: metaMap,
          annotations: metaMap,
          containers: fc.array(container(names), { minLength: 1, maxLength: 3 }),
          initContainers: fc.option(fc.array(container(names), { maxLength: 2 }), { nil: undefined }),
          ephemeralContainers: fc.option(fc.array(container(names), { maxLength: 1 }), { nil: undefined }),
          hostNetwork: fc.option(fc.boolean(), { nil: undefined }),
        },
        { requiredKeys: ['containers'] },
      )
      .map((p) => {
        const withToken = (c: V1Container) =>
          token && automount !== false && !(c.volumeMounts ?? []).some((m) => m.mountPath === TOKEN_PATH)
            ? { ...c, volumeMounts: [...(c.volumeMounts ?? []), { name: 'kube-api-access-ab12c', readOnly: true, mountPath: TOKEN_PATH }] }
            : c;
        const spec: V1Pod['spec'] = { containers: p.containers.map(withToken), serviceAccountName: 'default' };
        if (p.initContainers) spec.initContainers = p.initContainers.map(withToken);
        if (p.ephemeralContainers) spec.ephemeralContainers = p.ephemeralContainers as never;
        if (all.length) spec.volumes = all;
        if (automount !== undefined) spec.automountServiceAccountToken = automount;
        if (p.hostNetwork !== undefined) spec.hostNetwork = p.hostNetwork;
        const metadata: V1Pod['metadata'] = { generateName: 'web-7d4b9c-', namespace: 'shop' };
        if (p.labels) metadata.labels = p.labels;
        if (p.annotations) metadata.annotations = p.annotations;
        return { apiVersion: 'v1', kind: 'Pod', metadata, spec };
      })
      // A pod that is already invalid is refused by the API server's validation whatever we do; see podcheck's tests.
      .filter((p) => podInvariantViolations(p).length === 0 && [...(p.spec.initContainers ?? []), ...p.spec.containers, ...((p.spec.ephemeralContainers as V1Container[] | undefined) ?? [])].every((c, _, all) => all.filter((o) => o.name === c.name).length === 1));
  });

export const selector = fc.oneof(
  fc.record({ matchLabels: fc.dictionary(metaKey, metaValue, { minKeys: 1, maxKeys: 2 }) }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({ key: metaKey, operator: fc.constantFrom('In', 'NotIn'), values: fc.array(metaValue, { minLength: 1, maxLength: 2 }) }),
        fc.record({ key: metaKey, operator: fc.constantFrom('Exists', 'DoesNotExist') }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);

export function profile(): fc.Arbitrary<Record<string, unknown>> {
  return fc.uniqueArray(volume, { minLength: 1, maxLength: 2, selector: (v) => v.name }).chain((volumes) => {
    const names = volumes.map((v) => v.name);
    const mounts = fc.uniqueArray(
      fc.record({ name: fc.constantFrom(...names), mountPath, readOnly: fc.boolean() }, { requiredKeys: ['name', 'mountPath'] }),
      { maxLength: 2, selector: (m: V1VolumeMount) => m.mountPath },
    );
    const sidecar = fc.record(
      {
        name,
        image: fc.constantFrom('registry.example.com/logging/agent:1.0', 'registry.example.com/proxy'),
        ports: fc.uniqueArray(port, { maxLength: 1, selector: (p) => `${p.containerPort}/${p.protocol ?? 'TCP'}` }),
        volumeMounts: mounts,
        resources: fc.constant({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } }),
      },
      { requiredKeys: ['name', 'image'] },
    );
    return fc.record(
      {
        nativeSidecar: fc.constantFrom(true, false, 'auto'),
        containers: fc.uniqueArray(sidecar, { maxLength: 2, selector: (c) => c.name }),
        initContainers: fc.uniqueArray(fc.record({ name, image: fc.constant('busybox:1.36') }), { maxLength: 1, selector: (c) => c.name }),
        volumes: fc.constant(volumes),
        appVolumeMounts: mounts,
        overrides: fc.record({ resources: fc.boolean(), imageRegistries: fc.constantFrom([], ['registry.example.com/']) }),
      },
      { requiredKeys: ['containers', 'volumes'] },
    );
  });
}

/** A config the loader accepts (cases it refuses are discarded: the schema has its own tests). */
export const config: fc.Arbitrary<CompiledConfig> = fc
  .record({
    policy: fc.constantFrom('opt-in', 'opt-out'),
    onConflict: fc.constantFrom('skip', 'deny'),
    allowPodOptOut: fc.boolean(),
    alwaysInjectSelector: fc.array(selector, { maxLength: 1 }),
    neverInjectSelector: fc.array(selector, { maxLength: 1 }),
    profiles: fc.record({ 'log-shipper': profile(), proxy: profile() }, { requiredKeys: ['log-shipper'] }),
  })
  .map((c) => parseConfigText(stringify({ ...c, defaultProfiles: ['log-shipper'] }), 'generated.yaml'))
  .filter((r) => r.ok)
  .map((r) => (r.ok ? r.compiled : (undefined as never)));

export const server = fc.constantFrom({ nativeSidecars: true }, { nativeSidecars: false }, { nativeSidecars: undefined });
export const namespaceLabels = fc.constantFrom<Record<string, string> | undefined>(undefined, {}, { 'sidecar-injector.io/injection': 'enabled' }, { 'sidecar-injector.io/injection': 'disabled' });


/**
 * Characters where CEL's string functions and JavaScript's part ways (src/core/cel-strings.ts), and their
 * neighbours: spaces that both trim, U+0085 (only Go's unicode.IsSpace), U+FEFF (only JavaScript's trim),
 * U+200B and U+180E (neither: no White_Space), letters that JavaScript's toLowerCase() changes and CEL's
 * lowerAscii() does not (Turkish İ and ı, the Kelvin sign, long s), commas.
 */
export const CEL_EDGE_CHARACTERS = [
  ' ', '\t', '\n', '\r', '\v', '\f', '\u0085', '\u00a0', '\u1680', '\u2000', '\u2007', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
  '\ufeff', '\u200b', '\u180e', '\u0130', '\u0131', '\u212a', '\u017f', ',',
];

/** A word in random ASCII case (the bits say which letters are upper case). */
const anyCase = (words: readonly string[]) =>
  fc.tuple(fc.constantFrom(...words), fc.nat()).map(([w, bits]) => [...w].map((c, i) => ((bits >> i) & 1 ? c.toUpperCase() : c)).join(''));

/**
 * Strings made of `words` (in any ASCII case), the edge characters and arbitrary code points (any plane):
 * half of them one word wrapped in edge characters (a value that means something once trimmed, or not;
 * the first word, the one that means most, as often as all the others), half of them pieces of all three
 * in any order.
 */
export function celEdgeString(words: readonly string[]): fc.Arbitrary<string> {
  const edges = fc.array(fc.constantFrom(...CEL_EDGE_CHARACTERS), { maxLength: 2 }).map((chars) => chars.join(''));
  const word = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...words) }, { weight: 1, arbitrary: anyCase(words) });
  const piece = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...CEL_EDGE_CHARACTERS) },
    { weight: 6, arbitrary: word },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 3 }) },
  );
  return fc.oneof(
    fc.tuple(edges, fc.constant(words[0]!), edges).map((parts) => parts.join('')),
    fc.tuple(edges, word, edges).map((parts) => parts.join('')),
    { weight: 2, arbitrary: fc.array(piece, { maxLength: 6 }).map((pieces) => pieces.join('')) },
  );
}

/** An inject wish (label or annotation value, or a profile list) for the chart's config. */
export const celEdgeWish = celEdgeString(['true', 'false', 'log-shipper', 'exporter', 'nginx-exporter', 'nope', 'log-shıpper', 'LOG-SHİPPER', 'falſe', ',', '']);

/** An image override for the chart's log shipper (allowed: cr.fluentbit.io/fluent/). */
export const celEdgeImage = celEdgeString(['cr.fluentbit.io/fluent/fluent-bit:3.3.0', 'cr.fluentbit.io/fluent/a@sha256:00', 'cr.fluentbit.io/fluent', 'docker.io/x', '10m']);

/** A resource override (quantities), and sometimes an image where a quantity belongs. */
export const celEdgeQuantity = celEdgeString(['150m', '10m', '100m', '64Mi', '1Gi', '1e3', '.5', '2', 'cr.fluentbit.io/fluent']);
