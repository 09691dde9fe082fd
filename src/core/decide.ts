/**
 * Who gets injected: SPEC section 5, rules 2 to 8, first match wins.
 * Pure: the pod, its namespace and the namespace's labels in, a decision out.
 * The reason becomes the log field, the audit annotation and, when the pod
 * asked for injection and does not get it, a warning.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { CompiledConfig } from './config.js';
import { celLowerAscii, celSplit, celTrim } from './cel-strings.js';
import { anySelectorMatches } from './selector.js';
import { tenantProfileKey, tenantVerdict, type TenantProfiles } from './tenant-profile.js';
import { warning } from './warning.js';

export type Decision =
  | { action: 'inject'; profiles: string[]; reason: string; warnings: string[] }
  | { action: 'skip' | 'unchanged'; reason: string; warnings: string[] };

/** The pod's `<prefix>/inject` wish: the label wins over the annotation. */
export type Wish = { kind: 'none' } | { kind: 'true' } | { kind: 'false' } | { kind: 'profiles'; names: string[] };

/**
 * Read as the compiled policy reads it (policy.ts's `raw`, `wishTrue`, `wishFalse`, `listed`): CEL's
 * `trim()`, `lowerAscii()` and `split(",")`, not JavaScript's (cel-strings.ts), so that a no-break space,
 * a byte order mark or a Turkish İ means the same in both modes.
 */
export function readWish(pod: V1Pod, injectKey: string): Wish {
  const raw = pod.metadata?.labels?.[injectKey] ?? pod.metadata?.annotations?.[injectKey];
  if (raw === undefined) return { kind: 'none' };
  const value = celTrim(raw);
  const lower = celLowerAscii(value);
  if (lower === 'true') return { kind: 'true' };
  if (lower === 'false') return { kind: 'false' };
  const names = celSplit(value, ',')
    .map(celTrim)
    .filter((n) => n !== '');
  return names.length === 0 ? { kind: 'none' } : { kind: 'profiles', names };
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

export function decide(
  pod: V1Pod,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  compiled: CompiledConfig,
  tenants?: TenantProfiles,
): Decision {
  const { config, keys } = compiled;
  const warnings: string[] = [];
  const labels = pod.metadata?.labels ?? EMPTY;
  const wish = readWish(pod, keys.inject);
  const asked = wish.kind === 'true' || wish.kind === 'profiles';

  const skip = (reason: string): Decision => {
    if (asked) warnings.push(warning(`sidecar injection skipped: ${reason}`));
    return { action: 'skip', reason, warnings };
  };
  const injectDefaults = (reason: string): Decision =>
    config.defaultProfiles.length === 0
      ? skip('no defaultProfiles are configured')
      : { action: 'inject', profiles: [...config.defaultProfiles], reason, warnings };

  // 2
  if (compiled.excludedNamespaces.has(namespace)) return skip(`namespace ${namespace} is excluded`);
  // 3
  if (pod.metadata?.annotations?.[keys.status] !== undefined) {
    return { action: 'unchanged', reason: 'already injected (status annotation present)', warnings };
  }
  // 4
  if (anySelectorMatches(config.neverInjectSelector, labels)) return skip('pod matches neverInjectSelector');
  if (wish.kind === 'false') {
    if (config.allowPodOptOut) return { action: 'skip', reason: 'pod opted out', warnings };
    warnings.push(warning(`${keys.inject}=false ignored: pods may not opt out here (allowPodOptOut: false)`));
  }
  // 5
  if (wish.kind === 'true') return injectDefaults('pod asked for the default profiles');
  if (wish.kind === 'profiles') {
    const known: string[] = [];
    for (const name of wish.names) {
      const chosen = chooseProfile(name, namespace, namespaceLabels, compiled, tenants, warnings);
      if (chosen !== undefined && !known.includes(chosen)) known.push(chosen);
    }
    if (known.length > 0) return { action: 'inject', profiles: known, reason: 'pod asked for these profiles', warnings };
  }
  // 6
  if (anySelectorMatches(config.alwaysInjectSelector, labels)) return injectDefaults('pod matches alwaysInjectSelector');
  // 7
  const nsInjection = namespaceLabels?.[keys.namespaceInjection];
  if (nsInjection === 'enabled') return injectDefaults(`namespace ${namespace} has injection enabled`);
  if (nsInjection === 'disabled') return skip(`namespace ${namespace} has injection disabled`);
  // 8
  if (config.policy === 'opt-out') return injectDefaults('policy is opt-out');
  return skip('policy is opt-in and neither the pod nor its namespace asked');
}

/**
 * A name the pod asked for: the config's profile of that name, else the
 * SidecarProfile of that name in the pod's own namespace (SPEC 9), recorded
 * as `namespace/name`, if it is accepted; a profile that is not is never
 * injected, and the pod is told why.
 */
function chooseProfile(
  name: string,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  compiled: CompiledConfig,
  tenants: TenantProfiles | undefined,
  warnings: string[],
): string | undefined {
  if (Object.hasOwn(compiled.config.profiles, name)) return name;
  const tenant = tenants?.get(name);
  if (tenant === undefined || tenant.namespace !== namespace) {
    warnings.push(warning(`unknown sidecar profile "${name}" ignored`));
    return undefined;
  }
  const key = tenantProfileKey(namespace, name);
  const verdict = tenantVerdict(tenant, namespaceLabels, compiled);
  if (verdict.accepted) return key;
  warnings.push(warning(`sidecar profile ${key} not injected (${verdict.reason}): ${verdict.message}`));
  return undefined;
}
