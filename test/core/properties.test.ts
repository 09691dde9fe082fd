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
import type { V1Pod } from '@kubernetes/client-node';
import { Pod } from 'kubernetes-models/v1';
import type { CompiledConfig } from '../../src/core/config.js';
import { admitPod } from '../../src/core/admit.js';
import { mutate } from '../../src/core/mutate.js';
import { parseReview } from '../../src/core/review.js';
import { admissionReview } from '../helpers/fixtures.js';
import { podInvariantViolations } from '../helpers/invariants.js';
import { config, namespaceLabels, pod, server } from '../helpers/arbitraries.js';
import { applyJsonPatch, decodePatch, hasKubectl, patchEngine } from '../helpers/patch-engine.js';
import { applyPatch, type Operation } from 'rfc6902';

const SEED = Number(process.env.PROPERTY_SEED ?? 20261129);
/** Cases per property; `npm run mutation` lowers it, since it runs these tests once per mutant. */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);

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
