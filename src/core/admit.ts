/**
 * One pod through the rules: decide, inject, check the result as a whole,
 * diff. Shared by the webhook (mutate.ts) and the offline `inject` command,
 * so both give the same answer for the same pod.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { AddOperation } from 'fast-json-patch';
import type { CompiledConfig } from './config.js';
import { decide } from './decide.js';
import { inject, type ServerFeatures } from './inject.js';
import { additivePatch } from './patch.js';
import { newProblems } from './podcheck.js';
import type { TenantProfiles } from './tenant-profile.js';
import { warning } from './warning.js';

/** The words of the `decision` audit annotation and metric label. */
export type PodDecision = 'injected' | 'skipped' | 'unchanged' | 'conflict' | 'denied';

export type PodOutcome =
  | { decision: 'injected'; profiles: string[]; reason: string; warnings: string[]; pod: V1Pod; patch: AddOperation<unknown>[] }
  | { decision: Exclude<PodDecision, 'injected'>; profiles: string[]; reason: string; warnings: string[] };

export interface PodContext {
  namespace: string;
  namespaceLabels: Readonly<Record<string, string>> | undefined;
  server: ServerFeatures;
  /** The SidecarProfiles of the pod's namespace (SPEC 9); absent: none are served. */
  tenantProfiles?: TenantProfiles;
}

export function admitPod(pod: V1Pod, ctx: PodContext, compiled: CompiledConfig): PodOutcome {
  const decision = decide(pod, ctx.namespace, ctx.namespaceLabels, compiled, ctx.tenantProfiles);
  if (decision.action !== 'inject') {
    return { decision: decision.action === 'skip' ? 'skipped' : 'unchanged', profiles: [], reason: decision.reason, warnings: decision.warnings };
  }

  const { profiles } = decision;
  const injection = inject(pod, profiles, compiled, ctx.server, ctx.tenantProfiles);
  const warnings = [...decision.warnings, ...injection.warnings];
  const conflicts = newProblems(pod, injection.pod);
  if (conflicts.length > 0) {
    const reason = `conflict: ${conflicts.join('; ')}`;
    const deny = compiled.config.onConflict === 'deny';
    warnings.push(warning(`sidecar injection ${deny ? 'denied' : 'skipped'}: ${conflicts[0]}`));
    return { decision: deny ? 'denied' : 'conflict', profiles, reason, warnings };
  }
  const patch = additivePatch(pod, injection.pod);
  return { decision: 'injected', profiles, reason: decision.reason, warnings, pod: injection.pod, patch };
}
