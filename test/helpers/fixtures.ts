/** Fixtures shaped like what kube-apiserver sends at mutating admission (recorded shapes, see test/fixtures). */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';

const read = (name: string): unknown => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));

const POD = read('pod-from-replicaset.json') as V1Pod;
const REVIEW = read('admission-review-v1.json') as Record<string, unknown>;

/** A fresh copy of the pod a ReplicaSet creates: generateName, ownerReferences, defaults, token volume. */
export function apiserverPod(mutate?: (pod: V1Pod) => void): V1Pod {
  const pod = structuredClone(POD);
  mutate?.(pod);
  return pod;
}

export interface ReviewOptions {
  apiVersion?: 'admission.k8s.io/v1' | 'admission.k8s.io/v1beta1';
  namespace?: string;
  operation?: string;
  kind?: { group: string; version: string; kind: string };
  uid?: string;
}

export function admissionReview(object: unknown, opts: ReviewOptions = {}): Record<string, unknown> {
  const review = structuredClone(REVIEW) as { apiVersion: string; request: Record<string, unknown> };
  review.apiVersion = opts.apiVersion ?? 'admission.k8s.io/v1';
  review.request.uid = opts.uid ?? randomUUID();
  review.request.object = object;
  if (opts.namespace !== undefined) review.request.namespace = opts.namespace;
  if (opts.operation !== undefined) review.request.operation = opts.operation;
  if (opts.kind !== undefined) review.request.kind = opts.kind;
  return review;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
