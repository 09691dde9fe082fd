/**
 * AdmissionReview parsing: a decoded JSON body in, a typed request or a
 * message naming what is wrong and where out. Never throws.
 */
import type { V1Pod } from '@kubernetes/client-node';

export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];

/** The part of admission.k8s.io AdmissionRequest we read. */
export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { group?: string; version?: string; resource?: string };
  subResource?: string;
  operation?: string;
  name?: string;
  namespace?: string;
  object?: unknown;
  dryRun?: boolean;
}

export interface AdmissionReviewIn {
  apiVersion: AdmissionVersion;
  request: AdmissionRequest;
}

export type ReviewResult = { ok: true; review: AdmissionReviewIn } | { ok: false; error: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function parseReview(body: unknown): ReviewResult {
  if (!isObject(body)) return { ok: false, error: 'body is not a JSON object' };
  if (body.kind !== 'AdmissionReview') return { ok: false, error: `kind: expected "AdmissionReview", got ${JSON.stringify(body.kind)}` };
  if (!ADMISSION_VERSIONS.includes(body.apiVersion as AdmissionVersion)) {
    return { ok: false, error: `apiVersion: expected one of ${ADMISSION_VERSIONS.join(', ')}, got ${JSON.stringify(body.apiVersion)}` };
  }
  const request = body.request;
  if (!isObject(request)) return { ok: false, error: 'request: missing or not an object' };
  if (typeof request.uid !== 'string' || request.uid === '') return { ok: false, error: 'request.uid: missing or empty' };
  return { ok: true, review: { apiVersion: body.apiVersion as AdmissionVersion, request: request as unknown as AdmissionRequest } };
}

/** A Pod CREATE (not a subresource) is the only request we mutate. */
export function isPodCreate(request: AdmissionRequest): boolean {
  return (
    request.operation === 'CREATE' &&
    request.kind?.kind === 'Pod' &&
    (request.kind.group ?? '') === '' &&
    (request.subResource ?? '') === ''
  );
}

const stringMap = (v: unknown) => v === undefined || (isObject(v) && Object.values(v).every((x) => typeof x === 'string'));

/**
 * Checks the shape of the fields injection reads, so a malformed object is a
 * clear 400 instead of a crash. kube-apiserver always sends well-formed pods.
 */
export function podShapeProblem(object: unknown, at = 'request.object'): string | undefined {
  if (!isObject(object)) return `${at}: not an object`;
  const metadata = object.metadata;
  if (metadata !== undefined) {
    if (!isObject(metadata)) return `${at}.metadata: not an object`;
    if (!stringMap(metadata.labels)) return `${at}.metadata.labels: must map strings to strings`;
    if (!stringMap(metadata.annotations)) return `${at}.metadata.annotations: must map strings to strings`;
  }
  const spec = object.spec;
  if (!isObject(spec)) return `${at}.spec: missing or not an object`;
  if (!Array.isArray(spec.containers)) return `${at}.spec.containers: missing or not an array`;
  for (const list of ['containers', 'initContainers', 'ephemeralContainers', 'volumes'] as const) {
    const items = spec[list];
    if (items === undefined) continue;
    if (!Array.isArray(items)) return `${at}.spec.${list}: not an array`;
    for (const [i, item] of items.entries()) {
      const here = `${at}.spec.${list}[${i}]`;
      if (!isObject(item) || typeof item.name !== 'string') return `${here}.name: missing or not a string`;
      if (list === 'volumes') continue;
      for (const field of ['ports', 'volumeMounts'] as const) {
        const v = item[field];
        if (v === undefined) continue;
        if (!Array.isArray(v) || !v.every(isObject)) return `${here}.${field}: not an array of objects`;
      }
    }
  }
  return undefined;
}

export function asPod(object: unknown): V1Pod {
  return object as V1Pod;
}
