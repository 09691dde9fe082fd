/**
 * Per-pod overrides of an injected container (`<prefix>/<container>.image`,
 * `.cpu-request`, `.cpu-limit`, `.memory-request`, `.memory-limit`).
 * Each is judged on its own; a refused one leaves the profile's value and
 * adds a warning, so an override never blocks or smuggles in a sidecar.
 */
import type { V1Container } from '@kubernetes/client-node';
import type { Profile } from './config.js';
import { celSize, celTrim } from './cel-strings.js';
import { IMAGE_REFERENCE, imageAllowed } from './image-registry.js';
import { compareQuantities, isQuantity } from './quantity.js';
import { head, warning } from './warning.js';

export const OVERRIDE_SUFFIXES = ['image', 'cpu-request', 'cpu-limit', 'memory-request', 'memory-limit'] as const;
type Suffix = (typeof OVERRIDE_SUFFIXES)[number];

/** Override annotations of a pod, grouped by container name. */
export type OverrideRequests = Map<string, Partial<Record<Suffix, string>>>;

const SUFFIX_PATTERN = new RegExp(`^(.+)\\.(${OVERRIDE_SUFFIXES.join('|')})$`);

export function readOverrides(annotations: Readonly<Record<string, string>> | undefined, prefix: string): OverrideRequests {
  const out: OverrideRequests = new Map();
  if (!annotations) return out;
  const start = `${prefix}/`;
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(start)) continue;
    const m = SUFFIX_PATTERN.exec(key.slice(start.length));
    if (!m) continue;
    const [, container, suffix] = m as unknown as [string, string, Suffix];
    const entry = out.get(container) ?? {};
    entry[suffix] = value;
    out.set(container, entry);
  }
  return out;
}


type Resource = 'cpu' | 'memory';

/** True when both are quantities and `a` is larger, as Kubernetes compares them (the policy's isGreaterThan()). */
function exceeds(a: string | number | undefined, b: string | number | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return compareQuantities(String(a), String(b)) === 1;
}

type Refuse = (suffix: string, value: string, why: string) => void;

/** Applies the overrides a profile allows; returns the container (a copy when anything changed). */
export function applyOverrides(
  container: V1Container,
  requested: Partial<Record<Suffix, string>> | undefined,
  profile: Profile,
  warnings: string[],
): V1Container {
  if (!requested) return container;
  const refuse: Refuse = (suffix, value, why) => {
    const shown = value.length > 40 ? `${head(value, 39)}…` : value;
    warnings.push(warning(`override ${container.name}.${suffix}="${shown}" refused (${why}), profile value kept`));
  };
  const image = overrideImage(container.image, requested.image, profile, refuse);
  const requests: Record<string, string> = { ...(container.resources?.requests ?? {}) };
  const limits: Record<string, string> = { ...(container.resources?.limits ?? {}) };
  let resourcesChanged = false;
  for (const resource of ['cpu', 'memory'] as Resource[]) {
    resourcesChanged = overrideResource(resource, requested, profile, { requests, limits }, refuse) || resourcesChanged;
  }
  if (image === container.image && !resourcesChanged) return container;
  const out: V1Container = { ...container, image };
  if (resourcesChanged) {
    out.resources = { ...container.resources };
    if (Object.keys(requests).length > 0) out.resources.requests = requests;
    if (Object.keys(limits).length > 0) out.resources.limits = limits;
  }
  return out;
}

/** The image override, if the profile allows its registry; else the profile's image. */
function overrideImage(profileImage: string | undefined, requested: string | undefined, profile: Profile, refuse: Refuse): string | undefined {
  if (requested === undefined) return profileImage;
  // Trimmed as CEL's trim() trims (cel-strings.ts): the policy reads the same image.
  const value = celTrim(requested);
  if (profile.overrides.imageRegistries.length === 0) refuse('image', value, 'not allowed by the profile');
  else if (!IMAGE_REFERENCE.test(value) || celSize(value) > 512) refuse('image', value, 'not an image reference');
  else if (!imageAllowed(value, profile.overrides.imageRegistries)) refuse('image', value, 'registry not allowed');
  else return value;
  return profileImage;
}

/**
 * One resource's request and limit overrides, judged each on its own and the
 * request against the final limit; writes into `into` and says whether it changed.
 */
function overrideResource(
  resource: Resource,
  requested: Partial<Record<Suffix, string>>,
  profile: Profile,
  into: { requests: Record<string, string>; limits: Record<string, string> },
  refuse: Refuse,
): boolean {
  const limitKey = `${resource}-limit` as const;
  const requestKey = `${resource}-request` as const;
  const limitValue = requested[limitKey];
  const requestValue = requested[requestKey];
  if (!profile.overrides.resources) {
    if (limitValue !== undefined) refuse(limitKey, limitValue, 'not allowed by the profile');
    if (requestValue !== undefined) refuse(requestKey, requestValue, 'not allowed by the profile');
    return false;
  }
  const profileLimit = into.limits[resource];
  const profileRequest = into.requests[resource];
  let limit = profileLimit;
  if (limitValue !== undefined) {
    if (!isQuantity(limitValue)) refuse(limitKey, limitValue, 'not a quantity');
    else limit = limitValue;
  }
  let request = profileRequest;
  if (requestValue !== undefined) {
    if (!isQuantity(requestValue)) refuse(requestKey, requestValue, 'not a quantity');
    else if (exceeds(requestValue, limit)) refuse(requestKey, requestValue, `above the limit ${limit}`);
    else request = requestValue;
  }
  // A lowered limit may fall under the profile's own request: then the limit yields.
  if (limit !== profileLimit && exceeds(request, limit)) {
    refuse(limitKey, String(limit), `below the request ${request}`);
    limit = profileLimit;
  }
  if (limit === profileLimit && request === profileRequest) return false;
  if (limit !== undefined) into.limits[resource] = String(limit);
  if (request !== undefined) into.requests[resource] = String(request);
  return true;
}
