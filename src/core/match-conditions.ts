/**
 * Webhook matchConditions derived from the config in force (SPEC 7, Scope):
 * CEL expressions the API server evaluates before calling us, so that under
 * `opt-in` a pod that does not ask, in a namespace that does not ask, costs
 * no webhook call. Pure.
 *
 * They must never keep out a pod the rules could inject (test/core/
 * match-conditions.test.ts proves it with a real CEL evaluator over
 * generated pods): each is a sound over-approximation of a rule in decide.ts.
 * - scope: the pod's wish (label, else annotation) is set and not "false"
 *   (rule 5), or an alwaysInjectSelector matches (rule 6). Namespace opt-in
 *   (rule 7) cannot be seen from CEL: only a webhook entry whose
 *   namespaceSelector cannot select a namespace labelled `enabled` may carry
 *   them (canCarryConditions); every other entry sends every pod.
 * - never: no neverInjectSelector matches (rule 4 skips before anything).
 * Under `opt-out` every pod outside excluded namespaces can be injected:
 * no conditions.
 *
 * API server limits (admissionregistration validation): at most 64
 * conditions, names are qualified names, each expression must compile.
 */
import type { CompiledConfig } from './config.js';
import { selectorMatches, type LabelSelector, type LabelSelectorRequirement } from './selector.js';

export interface MatchCondition {
  name: string;
  expression: string;
}

/** A CEL string literal: JSON's escapes are CEL's (\", \\, \n, \uXXXX). */
const str = (s: string): string => JSON.stringify(s);

const LABELS = 'object.metadata.labels';
const ANNOTATIONS = 'object.metadata.annotations';
const has = (map: string, key: string) => `(has(${map}) && ${str(key)} in ${map})`;

function requirement(r: LabelSelectorRequirement): string {
  const values = `[${(r.values ?? []).map(str).join(', ')}]`;
  const value = `${LABELS}[${str(r.key)}]`;
  switch (r.operator) {
    case 'In':
      return `(${has(LABELS, r.key)} && ${value} in ${values})`;
    case 'NotIn':
      return `(!${has(LABELS, r.key)} || !(${value} in ${values}))`;
    case 'Exists':
      return has(LABELS, r.key);
    case 'DoesNotExist':
      return `!${has(LABELS, r.key)}`;
  }
}

/** metav1.LabelSelector over the pod's labels; an empty selector selects everything. */
export function selectorExpression(selector: LabelSelector): string {
  const terms = [
    ...Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `(${has(LABELS, k)} && ${LABELS}[${str(k)}] == ${str(v)})`),
    ...(selector.matchExpressions ?? []).map(requirement),
  ];
  return terms.length === 0 ? 'true' : terms.join(' && ');
}

/** The conditions for the webhook entry that serves namespaces not labelled `enabled`; [] when every pod must be sent. */
export function matchConditionsFor(compiled: CompiledConfig): MatchCondition[] {
  const { config, keys } = compiled;
  if (config.policy === 'opt-out') return [];
  // readWish: the label wins when it is set, whatever its value.
  const wish = `(${has(LABELS, keys.inject)} ? ${LABELS}[${str(keys.inject)}] != "false" : (${has(ANNOTATIONS, keys.inject)} && ${ANNOTATIONS}[${str(keys.inject)}] != "false"))`;
  const scope = [wish, ...config.alwaysInjectSelector.map((s) => `(${selectorExpression(s)})`)].join(' || ');
  const conditions: MatchCondition[] = [{ name: 'sidecar-injector-asked', expression: scope }];
  if (config.neverInjectSelector.length > 0) {
    conditions.push({ name: 'sidecar-injector-not-never', expression: `!(${config.neverInjectSelector.map((s) => `(${selectorExpression(s)})`).join(' || ')})` });
  }
  return conditions;
}

/** The namespaceSelector's requirements on one label key: the others cannot keep a namespace out by this key's value. */
function onKey(selector: LabelSelector | undefined, key: string): LabelSelector {
  const value = selector?.matchLabels?.[key];
  return {
    matchLabels: value === undefined ? {} : { [key]: value },
    matchExpressions: (selector?.matchExpressions ?? []).filter((r) => r.key === key),
  };
}

/**
 * A webhook entry may carry the conditions only when its namespaceSelector
 * cannot select a namespace labelled `<prefix>/injection=enabled`: pods there
 * are injected by rule 7, which CEL cannot see. Requirements on other keys
 * are ignored (a namespace can carry any other labels), so a selector is
 * judged by what it says of this one key: sound, and exact but for
 * selectors that contradict themselves elsewhere (which then send every pod).
 */
export function canCarryConditions(namespaceSelector: LabelSelector | undefined, namespaceLabel: string): boolean {
  return !selectorMatches(onKey(namespaceSelector, namespaceLabel), { [namespaceLabel]: 'enabled' });
}

/** The entry selects only namespaces labelled `enabled` (the chart's split): sending every pod there is its purpose. */
export function selectsOnlyEnabledNamespaces(namespaceSelector: LabelSelector | undefined, namespaceLabel: string): boolean {
  const selector = onKey(namespaceSelector, namespaceLabel);
  const mentioned = [...Object.values(selector.matchLabels ?? {}), ...(selector.matchExpressions ?? []).flatMap((r) => r.values ?? [])];
  // Any value other than `enabled` it could accept is one it mentions, or one it does not (stood in for by a value no selector names).
  const others = [...new Set([...mentioned, '\u0000other'])].filter((v) => v !== 'enabled');
  return !selectorMatches(selector, {}) && others.every((v) => !selectorMatches(selector, { [namespaceLabel]: v }));
}

/** The conditions a webhook entry should carry: none unless its namespaceSelector keeps out namespaces labelled `enabled`. */
export function conditionsForEntry(namespaceSelector: LabelSelector | undefined, conditions: readonly MatchCondition[], namespaceLabel: string): readonly MatchCondition[] {
  return canCarryConditions(namespaceSelector, namespaceLabel) ? conditions : [];
}
