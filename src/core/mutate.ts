/**
 * The webhook's pipeline: a parsed AdmissionReview in, the AdmissionReview to
 * answer and what to log out. Pure: namespace labels come from a lookup the
 * caller provides (a cache, never a network call).
 */
import type { CompiledConfig } from './config.js';
import { admitPod, type PodDecision } from './admit.js';
import { allowed, complete, denied, patched, type AdmissionReviewOut } from './response.js';
import { asPod, isPodCreate, podShapeProblem, type AdmissionReviewIn } from './review.js';

/** Where namespace labels come from: a cache the edge keeps (never a network call on the admission path). */
export type NamespaceLabels = (namespace: string) => Readonly<Record<string, string>> | undefined;

export interface MutateContext {
  config: CompiledConfig;
  namespaceLabels: NamespaceLabels;
}

/** What the edge logs and counts for one admission. */
export interface MutateSummary {
  decision: PodDecision | 'error';
  namespace: string;
  pod: string;
  profiles: string[];
  reason: string;
}

export type MutateResult =
  | { ok: true; review: AdmissionReviewOut; summary: MutateSummary }
  | { ok: false; error: string };

export function mutate(review: AdmissionReviewIn, ctx: MutateContext): MutateResult {
  const { apiVersion, request } = review;
  const namespace = request.namespace ?? '';
  if (!isPodCreate(request)) {
    const what = `${request.operation ?? '?'} ${request.kind?.kind ?? '?'}`;
    return {
      ok: true,
      review: complete(apiVersion, request.uid, allowed()),
      summary: { decision: 'unchanged', namespace, pod: request.name ?? '', profiles: [], reason: `not a Pod CREATE (${what})` },
    };
  }
  const problem = podShapeProblem(request.object);
  if (problem) return { ok: false, error: problem };

  const pod = asPod(request.object);
  const podName = pod.metadata?.name || pod.metadata?.generateName || request.name || '';
  const podNamespace = namespace || pod.metadata?.namespace || '';
  const outcome = admitPod(pod, { namespace: podNamespace, namespaceLabels: ctx.namespaceLabels(podNamespace) }, ctx.config);

  const auditAnnotations: Record<string, string> = { decision: outcome.decision };
  if (outcome.decision === 'injected') auditAnnotations.profiles = outcome.profiles.join(',');
  else auditAnnotations.reason = outcome.reason;
  const extras = { warnings: outcome.warnings, auditAnnotations };

  let body;
  if (outcome.decision === 'injected') body = patched(outcome.patch, extras);
  else if (outcome.decision === 'denied') body = denied(409, `sidecar-injector: ${outcome.reason}`, extras);
  else body = allowed(extras);

  return {
    ok: true,
    review: complete(apiVersion, request.uid, body),
    summary: { decision: outcome.decision, namespace: podNamespace, pod: podName, profiles: outcome.profiles, reason: outcome.reason },
  };
}
