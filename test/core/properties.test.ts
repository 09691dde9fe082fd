/**
 * Property-based tests of the core: generated pods (containers, init and
 * ephemeral containers, volumes, ports, labels and annotations or none, keys
 * with `/` and `~`, names at the length limit) and generated configs
 * (profiles, overrides, native or not, selectors), through the whole
 * pipeline (mutate: review in, review out). Every case must keep the
 * invariants of SPEC 3 and 6. Seeded and bounded; a failure prints the seed
 * and the shrunk case (fast-check's report), so it can be replayed with
 * `seed` and `path` in fc.assert's options.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { Pod } from 'kubernetes-models/v1';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { CompiledConfig } from '../../src/core/config.js';
import { admitPod } from '../../src/core/admit.js';
import { mutate } from '../../src/core/mutate.js';
import { parseReview } from '../../src/core/review.js';
import { admissionReview } from '../helpers/fixtures.js';
import { podInvariantViolations } from '../helpers/invariants.js';
import { applyJsonPatch, decodePatch, hasKubectl, patchEngine } from '../helpers/patch-engine.js';
import { applyPatch, type Operation } from 'rfc6902';

const SEED = Number(process.env.PROPERTY_SEED ?? 20261129);
/** Cases per property; `npm run mutation` lowers it, since it runs these tests once per mutant. */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);
const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

// Small pools on purpose: generated pods and profiles must collide often.
const name = fc.oneof(
  fc.constantFrom('app', 'web', 'log-shipper', 'proxy', 'agent', 'setup', 'logs', 'data', 'x'.repeat(63)),
  fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/),
);
const port = fc.record({ containerPort: fc.constantFrom(1, 80, 2020, 8080, 9100, 15001, 65535), protocol: fc.constantFrom('TCP', 'UDP') }, { requiredKeys: ['containerPort'] });
const mountPath = fc.constantFrom('/var/log/app', '/data', '/tmp', '/etc/agent', TOKEN_PATH);
const volumeSource = fc.constantFrom<Omit<V1Volume, 'name'>>({ emptyDir: {} }, { configMap: { name: 'cm' } }, { secret: { secretName: 's' } });
const volume = fc.record({ name, source: volumeSource }).map(({ name: n, source }) => ({ name: n, ...source }) as V1Volume);
const metaKey = fc.constantFrom('app', 'team', 'example.com/owner', 'a~b/c~1', 'x.y/z', 'sidecar-injector.io/inject');
const metaValue = fc.constantFrom('true', 'false', 'log-shipper', 'log-shipper,proxy', 'nope', '', 'web');
const metaMap = fc.option(fc.dictionary(metaKey, metaValue, { maxKeys: 3 }), { nil: undefined });

function container(volumes: string[]): fc.Arbitrary<V1Container> {
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
const pod: fc.Arbitrary<V1Pod> = fc
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

const selector = fc.oneof(
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

function profile(): fc.Arbitrary<Record<string, unknown>> {
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
const config: fc.Arbitrary<CompiledConfig> = fc
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

const server = fc.constantFrom({ nativeSidecars: true }, { nativeSidecars: false }, { nativeSidecars: undefined });
const namespaceLabels = fc.constantFrom<Record<string, string> | undefined>(undefined, {}, { 'sidecar-injector.io/injection': 'enabled' }, { 'sidecar-injector.io/injection': 'disabled' });

interface Case {
  pod: V1Pod;
  config: CompiledConfig;
  server: { nativeSidecars: boolean | undefined };
  labels: Record<string, string> | undefined;
}
const cases: fc.Arbitrary<Case> = fc.record({ pod, config, server, labels: namespaceLabels });

function run(c: Case, object: V1Pod) {
  const parsed = parseReview(admissionReview(object, { namespace: 'shop' }));
  if (!parsed.ok) throw new Error(parsed.error);
  const result = mutate(parsed.review, { config: c.config, namespaceLabels: () => c.labels, server: c.server });
  if (!result.ok) throw new Error(result.error);
  return { request: parsed.review.request, review: result.review };
}

/** The invariants that hold for every answer; returns the patched pod (or the original when nothing changed). */
function checkAnswer(c: Case, apply: (pod: V1Pod, ops: Operation[]) => V1Pod): V1Pod {
  const { request, review } = run(c, c.pod);
  // A valid AdmissionReview, in the version asked, for this request.
  expect(review.apiVersion).toBe('admission.k8s.io/v1');
  expect(review.kind).toBe('AdmissionReview');
  expect(review.response.uid).toBe(request.uid);
  expect(typeof review.response.allowed).toBe('boolean');
  for (const w of review.response.warnings ?? []) expect(w.length).toBeLessThan(120);
  if (!review.response.allowed) expect(review.response.status?.code).toBe(409);
  if (review.response.patch === undefined) {
    expect(review.response.patchType).toBeUndefined();
    return c.pod;
  }
  expect(review.response.patchType).toBe('JSONPatch');
  const ops = decodePatch(review.response.patch) as Operation[];
  expect(ops.every((op) => op.op === 'add')).toBe(true);
  const patched = apply(c.pod, ops);
  // The patch is the whole change: applied, it gives exactly the pod the core built.
  const built = admitPod(c.pod, { namespace: 'shop', namespaceLabels: c.labels, server: c.server }, c.config);
  expect(built.decision).toBe('injected');
  if (built.decision === 'injected') expect(patched).toEqual(JSON.parse(JSON.stringify(built.pod)));

  // No collision (names, ports, mounts) and nothing dangling: the final-pod check, written independently.
  expect(podInvariantViolations(patched)).toEqual([]);
  for (const ct of [...(patched.spec!.initContainers ?? []), ...patched.spec!.containers]) {
    const paths = (ct.volumeMounts ?? []).map((m) => m.mountPath);
    expect(new Set(paths).size).toBe(paths.length);
  }
  // core/v1's schema (kubernetes-models, from the Kubernetes OpenAPI).
  expect(() => new Pod(patched as never).validate()).not.toThrow();
  // App containers keep their place and everything but mounts; added mounts are the profiles' appVolumeMounts.
  const listed = new Set(Object.values(c.config.config.profiles).flatMap((pr) => pr.appVolumeMounts.map((m) => `${m.name}:${m.mountPath}`)));
  c.pod.spec!.containers.forEach((app, i) => {
    const now = patched.spec!.containers[i]!;
    expect({ ...now, volumeMounts: undefined }).toEqual({ ...app, volumeMounts: undefined });
    const had = app.volumeMounts ?? [];
    expect((now.volumeMounts ?? []).slice(0, had.length)).toEqual(had);
    for (const m of (now.volumeMounts ?? []).slice(had.length)) expect(listed).toContain(`${m.name}:${m.mountPath}`);
  });
  // App init containers run after the injected ones, untouched; ephemeral containers untouched.
  const appInit = c.pod.spec!.initContainers ?? [];
  expect((patched.spec!.initContainers ?? []).slice((patched.spec!.initContainers ?? []).length - appInit.length)).toEqual(appInit);
  expect(patched.spec!.ephemeralContainers).toEqual(c.pod.spec!.ephemeralContainers);
  // Idempotent: the webhook on its own output changes nothing.
  expect(run(c, patched).review.response.patch).toBeUndefined();
  return patched;
}

const rfc6902 = (pod: V1Pod, ops: Operation[]) => {
  const doc = structuredClone(pod);
  const failed = applyPatch(doc, ops).find((r) => r !== null);
  if (failed) throw new Error(`patch does not apply: ${String(failed)}`);
  return doc;
};

describe('properties of every admission (fast-check, seeded)', () => {
  it('generators reach injections, skips, conflicts and denials', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(cases, (c) => {
        const { review } = run(c, c.pod);
        const d = review.response.auditAnnotations?.decision;
        if (d) seen.add(d);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect([...seen].sort()).toEqual(['conflict', 'denied', 'injected', 'skipped']);
  });

  it('valid answer, add-only patch that applies, no new collision, core/v1-valid, app untouched, idempotent (rfc6902)', () => {
    fc.assert(
      fc.property(cases, (c) => {
        checkAnswer(c, rfc6902);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`the same patches give the same pods through ${patchEngine} (Kubernetes' own patch code), 60 cases`, () => {
    if (!hasKubectl) process.stderr.write('NOTE: kubectl not on PATH: this property compares rfc6902 with itself\n');
    let applied = 0;
    fc.assert(
      fc.property(cases, (c) => {
        const viaRfc = checkAnswer(c, rfc6902);
        if (viaRfc === c.pod) return;
        applied += 1;
        const viaKubectl = checkAnswer(c, (p, ops) => applyJsonPatch(p, ops as unknown[]));
        expect(viaKubectl).toEqual(viaRfc);
      }),
      { seed: SEED + 1, numRuns: 60 },
    );
    expect(applied).toBeGreaterThanOrEqual(10);
  });
});
