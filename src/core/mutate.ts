/**
 * The webhook's pipeline: a parsed AdmissionReview in, the AdmissionReview to
 * answer and what to log out. Pure: namespace labels come from a lookup the
 * caller provides (a cache, never a network call).
 */
import type { CompiledConfig } from './config.js';
import { admitPod, type PodDecision, type PodOutcome } from './admit.js';
import { podEvent, type PodEvent } from './events.js';
import type { ServerFeatures } from './inject.js';
import type { TenantProfileLookup } from './tenant-profile.js';
import { warning } from './warning.js';
import { allowed, complete, denied, patched, type AdmissionReviewOut } from './response.js';
import { asPod, isPodCreate, podShapeProblem, type AdmissionReviewIn } from './review.js';

/** Where namespace labels come from: a cache the edge keeps (never a network call on the admission path). */
export type NamespaceLabels = (namespace: string) => Readonly<Record<string, string>> | undefined;

export interface MutateContext {
  config: CompiledConfig;
  namespaceLabels: NamespaceLabels;
  server: ServerFeatures;
  /** The SidecarProfiles the edge has indexed (SPEC 9); absent: none are served. */
  tenantProfiles?: TenantProfileLookup;
  /** Set when the namespace's labels could not be had: the pod is decided as if it had none, and told why. */
  namespaceProblem?: string;
  /** Describe the Event this admission deserves (only when an event recorder is listening). */
  events?: boolean;
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
  | { ok: true; review: AdmissionReviewOut; summary: MutateSummary; event?: PodEvent }
  | { ok: false; error: string };

function auditAnnotationsOf(outcome: PodOutcome): Record<string, string> {
  if (outcome.decision === 'injected') return { decision: outcome.decision, profiles: outcome.profiles.join(',') };
  return { decision: outcome.decision, reason: outcome.reason };
}

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
  const outcome = admitPod(
    pod,
    {
      namespace: podNamespace,
      namespaceLabels: ctx.namespaceProblem ? undefined : ctx.namespaceLabels(podNamespace),
      server: ctx.server,
      tenantProfiles: ctx.tenantProfiles?.(podNamespace),
    },
    ctx.config,
  );
  const warnings = ctx.namespaceProblem && outcome.decision !== 'unchanged'
    ? [warning(`namespace labels unavailable (${ctx.namespaceProblem}); decided without them`), ...outcome.warnings]
    : outcome.warnings;

  // A re-invocation (status annotation present) records nothing: the API server keeps the first call's
  // audit annotations and logs an error for every key a later call tries to overwrite.
  const extras = outcome.decision === 'unchanged' ? { warnings } : { warnings, auditAnnotations: auditAnnotationsOf(outcome) };

  let body;
  if (outcome.decision === 'injected') body = patched(outcome.patch, extras);
  else if (outcome.decision === 'denied') body = denied(409, `sidecar-injector: ${outcome.reason}`, extras);
  else body = allowed(extras);

  return {
    ok: true,
    review: complete(apiVersion, request.uid, body),
    summary: { decision: outcome.decision, namespace: podNamespace, pod: podName, profiles: outcome.profiles, reason: outcome.reason },
    event: ctx.events ? podEvent(pod, podNamespace, outcome, ctx.config) : undefined,
  };
}
