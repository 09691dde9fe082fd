/**
 * What the API server can do, asked once at start: native sidecars. A plain
 * release version (`vX.Y.Z`) answers directly. Vendor and development builds
 * (`v1.29.3-eks-…`, `v1.30.0+k3s1`, `v1.31.0-alpha.2.123+abc`) may carry
 * backports or lack features, so there the API's own OpenAPI schema is asked:
 * does io.k8s.api.core.v1.Container have `restartPolicy`? (1.28 has the field
 * behind an alpha gate that is off by default, so a schema with the field and
 * a 1.28 minor still means no.)
 */
import { atLeast, featuresOf, MATCH_CONDITIONS_SINCE, NATIVE_SIDECARS_SINCE, plainGitVersion, versionFields } from '../core/kube-version.js';
import { UNKNOWN_SERVER, type ServerFeatures } from '../core/inject.js';
import type { KubeClient } from './client.js';

export interface FeatureDetection {
  features: ServerFeatures;
  /** The server's gitVersion, or "unknown". */
  version: string;
  /** How support was decided, for the start-up log. */
  how: string;
}

const CONTAINER_SCHEMA = 'io.k8s.api.core.v1.Container';
const TIMEOUT_MS = 10_000;

type SchemaMap = Record<string, { properties?: Record<string, unknown> } | undefined>;

/** Does the server's core/v1 Container schema have restartPolicy? undefined when no schema could be read. */
async function containerHasRestartPolicy(client: KubeClient): Promise<boolean | undefined> {
  try {
    // OpenAPI v3 (1.27+ GA): the discovery document names the core/v1 part, a few MB smaller than all of v2.
    const discovery = (await client.request('GET', '/openapi/v3', { timeoutMs: TIMEOUT_MS })).body as { paths?: Record<string, { serverRelativeURL?: string }> };
    const url = discovery.paths?.['api/v1']?.serverRelativeURL;
    if (url) {
      const doc = (await client.request('GET', url, { timeoutMs: TIMEOUT_MS })).body as { components?: { schemas?: SchemaMap } };
      const schema = doc.components?.schemas?.[CONTAINER_SCHEMA];
      if (schema) return schema.properties?.restartPolicy !== undefined;
    }
  } catch {
    // No v3 (older servers answer 404): try v2.
  }
  try {
    const doc = (await client.request('GET', '/openapi/v2', { timeoutMs: TIMEOUT_MS })).body as { definitions?: SchemaMap };
    const schema = doc.definitions?.[CONTAINER_SCHEMA];
    if (schema) return schema.properties?.restartPolicy !== undefined;
  } catch {
    // Neither schema readable: unknown.
  }
  return undefined;
}

/** Never throws: when nothing can be learnt, native sidecars count as unsupported (the safe side). */
export async function detectServerFeatures(client: KubeClient): Promise<FeatureDetection> {
  const unknown = (how: string): FeatureDetection => ({ features: UNKNOWN_SERVER, version: 'unknown', how });
  let info: { gitVersion?: unknown; major?: unknown; minor?: unknown };
  try {
    info = (await client.request('GET', '/version', { timeoutMs: TIMEOUT_MS })).body as typeof info;
  } catch (err) {
    return unknown(`GET /version failed: ${(err as Error).message}`);
  }
  const gitVersion = typeof info.gitVersion === 'string' ? info.gitVersion : 'unknown';
  const plain = plainGitVersion(gitVersion);
  if (plain) return { features: featuresOf(plain), version: gitVersion, how: 'release version' };

  const hasField = await containerHasRestartPolicy(client);
  if (hasField === undefined) return { ...unknown('no OpenAPI schema readable'), version: gitVersion };
  const fields = versionFields(info.major, info.minor);
  // matchConditions by the minor alone: a server whose gate is off drops the field, which the writer notices.
  const matchConditions = fields ? atLeast(fields, MATCH_CONDITIONS_SINCE) : undefined;
  if (hasField && fields && !atLeast(fields, NATIVE_SIDECARS_SINCE)) {
    return { features: { nativeSidecars: false, matchConditions }, version: gitVersion, how: `OpenAPI schema has the field, but ${fields.major}.${fields.minor} gates it off` };
  }
  return { features: { nativeSidecars: hasField, matchConditions }, version: gitVersion, how: `OpenAPI schema ${hasField ? 'has' : 'lacks'} Container.restartPolicy` };
}
