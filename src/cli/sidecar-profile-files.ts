/**
 * SidecarProfile manifests (SPEC 9) read from files for the offline commands:
 * `inject --profiles` serves them as the cluster would, `validate-config`
 * judges them against a config's limits. Every document must be a
 * SidecarProfile; a document that is not, or that names no namespace when
 * none is given, is an error that says which file and document.
 */
import { readFile } from 'node:fs/promises';
import type { TenantProfile, TenantProfileLookup, TenantProfiles } from '../core/tenant-profile.js';
import { readSidecarProfile } from '../config/sidecar-profile.js';
import { parseManifests } from './manifests.js';

export type ProfileFilesResult = { ok: true; profiles: TenantProfile[] } | { ok: false; errors: string[] };

export async function readProfileFiles(files: readonly string[], defaultNamespace: string | undefined): Promise<ProfileFilesResult> {
  const profiles: TenantProfile[] = [];
  const errors: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      errors.push(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      continue;
    }
    const parsed = parseManifests(text);
    if (!parsed.ok) {
      errors.push(`${file}: ${parsed.error}`);
      continue;
    }
    for (const doc of parsed.docs) {
      if (doc.value === null || doc.value === undefined) continue; // an empty document, as kubectl skips it
      const read = readSidecarProfile(doc.value, defaultNamespace);
      if (!read.ok) errors.push(`${file}: document ${doc.index}: ${read.error}`);
      else if (profiles.some((p) => p.namespace === read.tenant.namespace && p.name === read.tenant.name)) {
        errors.push(`${file}: document ${doc.index}: SidecarProfile ${read.tenant.namespace}/${read.tenant.name} is given twice`);
      } else profiles.push(read.tenant);
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, profiles };
}

/** The profiles by namespace, as the webhook's index hands them to admission. */
export function lookupOf(profiles: readonly TenantProfile[]): TenantProfileLookup {
  const byNamespace = new Map<string, Map<string, TenantProfile>>();
  for (const p of profiles) {
    const names = byNamespace.get(p.namespace) ?? new Map<string, TenantProfile>();
    names.set(p.name, p);
    byNamespace.set(p.namespace, names);
  }
  return (namespace): TenantProfiles | undefined => byNamespace.get(namespace);
}
