/**
 * A SidecarProfile object (SPEC 9), from the API or a file, read into what
 * the core judges and injects: its identity and generation, and its spec read
 * exactly as a config profile is (validateProfileSpec). A spec that is not a
 * profile is kept with its problems, so its status can say why.
 */
import type { TenantProfile } from '../core/tenant-profile.js';
import { validateProfileSpec } from './schema.js';

export const SIDECAR_PROFILE_GROUP = 'sidecar-injector.io';
export const SIDECAR_PROFILE_VERSION = 'v1alpha1';
export const SIDECAR_PROFILE_API_VERSION = `${SIDECAR_PROFILE_GROUP}/${SIDECAR_PROFILE_VERSION}`;
export const SIDECAR_PROFILE_KIND = 'SidecarProfile';
export const SIDECAR_PROFILE_PLURAL = 'sidecarprofiles';

export type ReadSidecarProfile = { ok: true; tenant: TenantProfile } | { ok: false; error: string };

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Whether a manifest document is a SidecarProfile (any version of our group, so a wrong version gets a clear answer). */
export function isSidecarProfileDocument(doc: unknown): boolean {
  return isObj(doc) && doc.kind === SIDECAR_PROFILE_KIND && typeof doc.apiVersion === 'string' && doc.apiVersion.startsWith(`${SIDECAR_PROFILE_GROUP}/`);
}

/**
 * `defaultNamespace` stands in for a file's document without one (as kubectl's
 * `-n`); objects from the API always carry theirs. A file's document has no
 * generation: it counts as 1, as the API server's first.
 */
export function readSidecarProfile(doc: unknown, defaultNamespace?: string): ReadSidecarProfile {
  if (!isObj(doc) || doc.kind !== SIDECAR_PROFILE_KIND) return { ok: false, error: `not a ${SIDECAR_PROFILE_KIND}` };
  if (doc.apiVersion !== SIDECAR_PROFILE_API_VERSION) {
    return { ok: false, error: `apiVersion: must be ${SIDECAR_PROFILE_API_VERSION}, not ${JSON.stringify(doc.apiVersion)}` };
  }
  const metadata = isObj(doc.metadata) ? doc.metadata : {};
  const name = metadata.name;
  if (typeof name !== 'string' || name === '') return { ok: false, error: 'metadata.name: required' };
  const namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : defaultNamespace;
  if (namespace === undefined) return { ok: false, error: `metadata.namespace: required for ${SIDECAR_PROFILE_KIND} ${name} (or give a namespace)` };
  const generation = typeof metadata.generation === 'number' && Number.isSafeInteger(metadata.generation) ? metadata.generation : 1;
  const spec = validateProfileSpec(doc.spec);
  return {
    ok: true,
    tenant: spec.ok
      ? { namespace, name, generation, profile: spec.profile, specProblems: [] }
      : { namespace, name, generation, profile: undefined, specProblems: spec.errors },
  };
}
