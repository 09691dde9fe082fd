/**
 * Which pods the API server sends to the webhook at all: a
 * MutatingWebhookConfiguration's webhooks, each with a namespaceSelector
 * (over the namespace's labels, `kubernetes.io/metadata.name` included) and
 * an objectSelector (over the pod's labels); an absent or empty selector
 * selects everything, and a pod is sent when any webhook selects it
 * (k8s.io/apiserver/pkg/admission/plugin/webhook/predicates: namespace and
 * object matchers). matchConditions are not applied: they are derived from
 * the rules (core/match-conditions.ts), so a pod they keep out that the
 * rules want is a bug the audit must show as missed. Pure.
 */
import { selectorMatches, type LabelSelector } from './selector.js';

export interface WebhookScope {
  name?: string;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
}

/** The label the API server sets on every namespace (1.21+); added here when a source lacks it. */
const NAME_LABEL = 'kubernetes.io/metadata.name';

export function sentToWebhook(
  webhooks: readonly WebhookScope[],
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  podLabels: Readonly<Record<string, string>> | undefined,
): boolean {
  const nsLabels = { [NAME_LABEL]: namespace, ...namespaceLabels };
  return webhooks.some((w) => selectorMatches(w.namespaceSelector ?? {}, nsLabels) && selectorMatches(w.objectSelector ?? {}, podLabels ?? {}));
}
