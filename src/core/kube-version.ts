/**
 * Kubernetes versions and what they can do for us. Pure: the edge asks the
 * API server (src/kube/features.ts) or reads `--kube-version`.
 */
import type { ServerFeatures } from './inject.js';

export interface KubeVersion {
  major: number;
  minor: number;
}

/** Native sidecars (SidecarContainers) are on by default from 1.29; 1.28 has the field behind an alpha gate that is off. */
export const NATIVE_SIDECARS_SINCE: KubeVersion = { major: 1, minor: 29 };

/** Webhook matchConditions: beta and on by default from 1.28 (AdmissionWebhookMatchConditions), GA in 1.30. */
export const MATCH_CONDITIONS_SINCE: KubeVersion = { major: 1, minor: 28 };

/** Newer than anything released: what `inject` assumes when no --kube-version is given. */
export const NEWEST: KubeVersion = { major: 1, minor: Number.MAX_SAFE_INTEGER };

export function atLeast(v: KubeVersion, min: KubeVersion): boolean {
  return v.major > min.major || (v.major === min.major && v.minor >= min.minor);
}

/** `1.30`, `v1.30`, `1.30.2`: what a user types for --kube-version; undefined when it is not one. */
export function parseKubeVersion(text: string): KubeVersion | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?$/.exec(text.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** A release's gitVersion, exactly `vX.Y.Z`; vendor and development builds (`v1.29.3-eks-…`, `v1.30.0+k3s1`) are not. */
export function plainGitVersion(gitVersion: string): KubeVersion | undefined {
  const m = /^v(\d+)\.(\d+)\.(\d+)$/.exec(gitVersion);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** `/version`'s major and minor fields ("1", "29+"); undefined when they do not read as numbers. */
export function versionFields(major: unknown, minor: unknown): KubeVersion | undefined {
  const ma = typeof major === 'string' ? /^(\d+)\+?$/.exec(major) : null;
  const mi = typeof minor === 'string' ? /^(\d+)\+?$/.exec(minor) : null;
  return ma && mi ? { major: Number(ma[1]), minor: Number(mi[1]) } : undefined;
}

export function featuresOf(version: KubeVersion): ServerFeatures {
  return { nativeSidecars: atLeast(version, NATIVE_SIDECARS_SINCE), matchConditions: atLeast(version, MATCH_CONDITIONS_SINCE) };
}

export function formatVersion(v: KubeVersion): string {
  return `${v.major}.${v.minor}`;
}
