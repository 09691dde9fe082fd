/**
 * `sidecar-injector crds` and the SidecarProfile CRD it prints: the chart
 * ships the same bytes; the schema is structural (the API server's rules,
 * apiextensions-apiserver pkg/apiserver/schema/validation.go, as far as this
 * schema uses them); it has every field of the core/v1 table the config is
 * validated with, with core/v1's descriptions; and every spec the config
 * schema accepts (validateProfileSpec, fast-check profiles) is accepted by
 * the CRD's schema with nothing pruned, but for one documented gap. The real
 * API server's verdict is test/e2e/tenant-api.e2e.ts's.
 */
import { describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { CORE_V1_TYPES } from '../../src/config/core-v1-schema.js';
import { validateProfileSpec } from '../../src/config/schema.js';
import { sidecarProfileCrd, type JSONSchemaProps } from '../../src/config/sidecar-profile-crd.js';
import { profile } from '../helpers/arbitraries.js';
import { CLI, runCli } from '../helpers/process.js';
import { restrictedProfile, tenantProfile } from '../helpers/tenant-profiles.js';
// @ts-expect-error: a plain .mjs build script, without type declarations
import { coreV1Docs, render } from '../../scripts/gen-crds.mjs';

const CHART_CRD = new URL('../../charts/sidecar-injector/crds/sidecarprofiles.yaml', import.meta.url);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const SEED = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);

type Version = { schema: { openAPIV3Schema: JSONSchemaProps } };
const crd = sidecarProfileCrd();
const root = (crd.spec.versions as Version[])[0]!.schema.openAPIV3Schema;
const spec = root.properties!.spec!;

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Where a schema breaks the structural rules this CRD could break (the API server's NonStructuralSchema). */
function structuralProblems(s: JSONSchemaProps, at: string): string[] {
  const out: string[] = [];
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  if (s.type === undefined && !intOrString && s['x-kubernetes-preserve-unknown-fields'] !== true) out.push(`${at}: no type`);
  if (s.anyOf && !(intOrString && JSON.stringify(s.anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]))) out.push(`${at}: anyOf other than int-or-string's`);
  if (s.type === 'array' && !s.items) out.push(`${at}: an array without items`);
  if (s.type === 'object' && s.properties && s.additionalProperties) out.push(`${at}: both properties and additionalProperties`);
  if (s['x-kubernetes-list-type'] === 'map') {
    for (const key of s['x-kubernetes-list-map-keys'] ?? []) if (!s.items?.required?.includes(key)) out.push(`${at}: list map key ${key} is not required`);
  }
  for (const [k, p] of Object.entries(s.properties ?? {})) out.push(...structuralProblems(p, `${at}.${k}`));
  if (s.items) out.push(...structuralProblems(s.items, `${at}[]`));
  if (s.additionalProperties) out.push(...structuralProblems(s.additionalProperties, `${at}{}`));
  return out;
}

/** The fields the API server would prune from VALUE (not in the schema, and not under preserve-unknown-fields). */
function pruned(value: unknown, s: JSONSchemaProps, at: string, out: string[] = []): string[] {
  if (s['x-kubernetes-preserve-unknown-fields']) return out;
  if (Array.isArray(value) && s.items) value.forEach((v, i) => pruned(v, s.items!, `${at}[${i}]`, out));
  else if (isObj(value) && s.properties) {
    for (const [k, v] of Object.entries(value)) {
      const p = s.properties[k];
      if (p === undefined) out.push(`${at}.${k}`);
      else pruned(v, p, `${at}.${k}`, out);
    }
  } else if (isObj(value) && s.additionalProperties) for (const [k, v] of Object.entries(value)) pruned(v, s.additionalProperties, `${at}.${k}`, out);
  return out;
}

// OpenAPI's x-kubernetes-* keywords are not JSON Schema's: ignored here (strict: false), checked above.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const validateSpec = ajv.compile(spec as object);
/**
 * A field set to null is dropped before validation where the schema does not
 * say `nullable` (apiextensions-apiserver pkg/apiserver/schema/pruning, "null
 * values for fields that don't specify nullable are pruned"), as the config
 * reads null as unset.
 */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isObj(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
}

/** What the CRD's schema says of a spec: its type errors (by path) and what it would prune. */
function crdVerdict(raw: unknown): { errors: string[]; pruned: string[] } {
  const value = withoutNulls(raw);
  const errors = validateSpec(value) ? [] : (validateSpec.errors ?? []).map((e) => `spec${e.instancePath.replace(/\/(\d+)/g, '[$1]').replace(/\//g, '.')}: ${e.message ?? ''}`);
  return { errors: [...new Set(errors)], pruned: pruned(value, spec, 'spec') };
}

describe('sidecar-injector crds', () => {
  it("prints exactly the chart's crds/sidecarprofiles.yaml (npm run gen:crds rewrites the chart's copy)", async () => {
    const out = await runCli(['crds']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(readFileSync(CHART_CRD, 'utf8'));
    const docs = parseAllDocuments(out.stdout).map((d) => d.toJS() as unknown);
    expect(docs).toEqual([JSON.parse(JSON.stringify(crd))]);
  });

  it('-o json prints the same definition in a List, whole through a pipe (over 64 KiB); another format is a usage error (exit 2)', async () => {
    const json = await runCli(['crds', '-o', 'json']);
    expect(json.code).toBe(0);
    expect(json.stdout.length).toBeGreaterThan(65536);
    expect(JSON.parse(json.stdout)).toEqual({ apiVersion: 'v1', kind: 'List', items: [parse(readFileSync(CHART_CRD, 'utf8'))] });
    const bad = await runCli(['crds', '-o', 'table']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('-o: expected yaml or json, got "table"');
    const help = await runCli(['crds', '--help']);
    expect(help.stdout).toContain('kubectl apply --server-side');
  });

  it('a reader that stops early (`crds | head`) ends it quietly, exit 0', () => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${CLI}" crds | head -c 10`], { encoding: 'utf8' });
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: '# Generate', stderr: '' });
  });

  it("the core/v1 descriptions are what the generator reads now from client-node's models (npm run gen:crds after an upgrade)", async () => {
    const committed = readFileSync(new URL('../../src/config/core-v1-docs.ts', import.meta.url), 'utf8');
    expect(committed).toBe((render as (d: unknown) => string)(await (coreV1Docs as () => Promise<unknown>)()));
  });
});

describe('the SidecarProfile CRD', () => {
  it('is a namespaced v1alpha1 SidecarProfile with a status subresource, a short name, a category and printer columns', () => {
    expect(crd.metadata.name).toBe('sidecarprofiles.sidecar-injector.io');
    expect(crd.spec).toMatchObject({
      group: 'sidecar-injector.io',
      scope: 'Namespaced',
      names: { kind: 'SidecarProfile', plural: 'sidecarprofiles', singular: 'sidecarprofile', shortNames: ['scp'], categories: ['sidecar-injector'] },
    });
    const [version] = crd.spec.versions as (Version & Record<string, unknown>)[];
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    expect((version!.additionalPrinterColumns as { name: string; jsonPath: string }[]).map((c) => [c.name, c.jsonPath])).toEqual([
      ['Accepted', '.status.conditions[?(@.type=="Accepted")].status'],
      ['Reason', '.status.conditions[?(@.type=="Accepted")].reason'],
      ['Containers', '.spec.containers[*].name'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  it('has a structural schema: every node typed (or int-or-string, or free-form), list map keys required', () => {
    expect(structuralProblems(root, 'openAPIV3Schema')).toEqual([]);
    // The checker itself sees what it must.
    expect(structuralProblems({ type: 'object', properties: { a: {}, b: { anyOf: [{ type: 'string' }] } } }, 'x')).toEqual(['x.a: no type', 'x.b: no type', 'x.b: anyOf other than int-or-string\'s']);
  });

  it("spec is a profile of SPEC 4: its six fields; the profile's names are list map keys; status.conditions is metav1.Condition", () => {
    expect(Object.keys(spec.properties!).sort()).toEqual(['appVolumeMounts', 'containers', 'initContainers', 'nativeSidecar', 'overrides', 'volumes']);
    for (const list of ['containers', 'initContainers', 'volumes']) expect(spec.properties![list]).toMatchObject({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] });
    expect(spec.properties!.overrides!.properties).toEqual({ resources: expect.objectContaining({ type: 'boolean' }), imageRegistries: expect.objectContaining({ type: 'array', items: { type: 'string' } }) });
    const conditions = root.properties!.status!.properties!.conditions!;
    expect(conditions).toMatchObject({ type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
    expect(conditions.items!.required).toEqual(['type', 'status', 'lastTransitionTime', 'reason', 'message']);
    expect(Object.keys(conditions.items!.properties!).sort()).toEqual(['lastTransitionTime', 'message', 'observedGeneration', 'reason', 'status', 'type']);
  });

  it('has every field of the core/v1 table at every depth, each described (kubectl explain)', () => {
    const missing: string[] = [];
    const undescribed: string[] = [];
    const walk = (s: JSONSchemaProps, type: string, at: string, seen: string[]): void => {
      if (seen.includes(type)) return;
      const fields = CORE_V1_TYPES[type]!;
      expect({ at, fields: Object.keys(s.properties ?? {}) }).toEqual({ at, fields: Object.keys(fields) });
      for (const [field, shape] of Object.entries(fields)) {
        const p = s.properties?.[field];
        if (!p) {
          missing.push(`${at}.${field}`);
          continue;
        }
        if (!p.description) undescribed.push(`${at}.${field}`);
        const ref = shape.replace(/^(\[\])+/, '');
        let node = p;
        for (let i = 0; i < (shape.length - ref.length) / 2; i++) node = node.items!;
        if (CORE_V1_TYPES[ref]) walk(node, ref, `${at}.${field}`, [...seen, type]);
      }
    };
    walk(spec.properties!.containers!.items!, 'V1Container', 'spec.containers[]', []);
    walk(spec.properties!.initContainers!.items!, 'V1Container', 'spec.initContainers[]', []);
    walk(spec.properties!.volumes!.items!, 'V1Volume', 'spec.volumes[]', []);
    walk(spec.properties!.appVolumeMounts!.items!, 'V1VolumeMount', 'spec.appVolumeMounts[]', []);
    expect(missing).toEqual([]);
    expect(undescribed).toEqual([]);
    expect(spec.properties!.containers!.items!.properties!.image!.description).toMatch(/^Container image name/);
  });

  it("types the table's scalars as core/v1 does: every number an int32 or int64 in client-node's models, ports int-or-string, quantities int-or-string", () => {
    const models = k8s as unknown as Record<string, { getAttributeTypeMap(): { baseName: string; format: string }[] }>;
    for (const [type, fields] of Object.entries(CORE_V1_TYPES)) {
      for (const [field, shape] of Object.entries(fields)) {
        if (shape.replace(/^(\[\])+/, '') !== 'number') continue;
        const format = models[type]!.getAttributeTypeMap().find((a) => a.baseName === field)!.format;
        expect({ field: `${type}.${field}`, format }).toEqual({ field: `${type}.${field}`, format: expect.stringMatching(/^int(32|64)$/) });
      }
    }
    const container = spec.properties!.containers!.items!.properties!;
    expect(container.ports!.items!.properties!.containerPort).toMatchObject({ type: 'integer' });
    expect(container.livenessProbe!.properties!.httpGet!.properties!.port).toMatchObject({ 'x-kubernetes-int-or-string': true });
    expect(container.resources!.properties!.limits!.additionalProperties).toMatchObject({ 'x-kubernetes-int-or-string': true });
    expect(container.securityContext!.properties!.capabilities!.properties!.add).toMatchObject({ type: 'array', items: { type: 'string' } });
  });
});

describe('the CRD accepts what the config accepts', () => {
  /**
   * The one gap: a quantity written as a number that is not whole (`cpu: 0.5`).
   * The config, like the pod API, reads it as a quantity; a structural schema
   * can only say integer-or-string (as every CRD's quantities do), so the API
   * server refuses it at write and the tenant writes "0.5" or 500m.
   */
  const fractionalQuantity = (value: unknown, path: string) => /\.resources\.(limits|requests)\.[^.]+$/.test(path) && typeof value === 'number' && !Number.isInteger(value);
  const at = (value: unknown, path: string): unknown => path.replace(/^spec\.?/, '').split(/\.|\[(\d+)\]/).filter(Boolean).reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k], value);

  function accepts(value: unknown): void {
    if (!validateProfileSpec(value).ok) return;
    const verdict = crdVerdict(value);
    const errors = verdict.errors.filter((e) => {
      const path = e.split(': ')[0]!;
      return !fractionalQuantity(at(value, path), path);
    });
    expect({ value, errors, pruned: verdict.pruned }).toEqual({ value, errors: [], pruned: [] });
  }

  it('accepts the restricted example profile and the config profiles of the fast-check generators, pruning nothing', () => {
    accepts(restrictedProfile());
    fc.assert(fc.property(profile(), (p) => accepts(p)), { numRuns: RUNS, seed: SEED });
    fc.assert(fc.property(tenantProfile, (p) => accepts(p)), { numRuns: RUNS, seed: SEED });
  });

  it('the gap is that one case: `cpu: 0.5` is refused, "0.5" and 1 are accepted', () => {
    const withCpu = (cpu: unknown) => ({ containers: [{ name: 'a', image: 'x', resources: { limits: { cpu } } }] });
    for (const cpu of [0.5, '0.5', 1, '500m']) expect(validateProfileSpec(withCpu(cpu)).ok).toBe(true);
    expect(crdVerdict(withCpu(0.5)).errors.length).toBeGreaterThan(0);
    for (const cpu of ['0.5', 1, '500m']) expect(crdVerdict(withCpu(cpu))).toEqual({ errors: [], pruned: [] });
  });

  it('refuses or prunes what the config refuses for its shape', () => {
    const cases: Record<string, unknown> = {
      'containers not a list': { containers: { name: 'a' } },
      'a port as a string': { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: '80' }] }] },
      'readOnly as a string': { volumes: [{ name: 'v', emptyDir: {} }], appVolumeMounts: [{ name: 'v', mountPath: '/v', readOnly: 'yes' }] },
      'overrides.resources as a string': { overrides: { resources: 'yes' } },
      'a typo in a core/v1 field': { volumes: [{ name: 'v', emptyDir: {} }], appVolumeMounts: [{ name: 'v', mountPath: '/v', readonly: true }] },
      'a field a profile does not have': { hostNetwork: true },
      'a container without a name': { containers: [{ image: 'x' }] },
    };
    for (const [name, value] of Object.entries(cases)) {
      expect({ name, config: validateProfileSpec(value).ok }).toEqual({ name, config: false });
      const verdict = crdVerdict(value);
      expect({ name, crdRefusesOrPrunes: verdict.errors.length + verdict.pruned.length > 0 }).toEqual({ name, crdRefusesOrPrunes: true });
    }
  });
});
