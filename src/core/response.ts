/**
 * AdmissionReview responses. Every builder goes through complete(), the one
 * place that sets apiVersion, kind and uid, so no path can forget the uid.
 */
import type { AddOperation } from 'fast-json-patch';
import type { AdmissionVersion } from './review.js';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
  status?: { code: number; message: string; reason?: string };
}

export interface AdmissionReviewOut {
  apiVersion: AdmissionVersion;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export type ResponseBody = Omit<AdmissionResponse, 'uid'>;

export function complete(apiVersion: AdmissionVersion, uid: string, body: ResponseBody): AdmissionReviewOut {
  const response: AdmissionResponse = { uid, ...body };
  if (response.warnings && response.warnings.length === 0) delete response.warnings;
  return { apiVersion, kind: 'AdmissionReview', response };
}

interface Extras {
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export function allowed(extras: Extras = {}): ResponseBody {
  return { allowed: true, ...extras };
}

export function patched(ops: readonly AddOperation<unknown>[], extras: Extras = {}): ResponseBody {
  if (ops.length === 0) return allowed(extras);
  return { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64'), ...extras };
}

export function denied(code: number, message: string, extras: Extras = {}): ResponseBody {
  const reason = code === 409 ? 'Conflict' : code >= 500 ? 'InternalError' : 'Forbidden';
  return { allowed: false, status: { code, message, reason }, ...extras };
}
