/**
 * The injector's configuration as the core sees it: the validated file
 * (see src/config/schema.ts) compiled once per load into what admissions need,
 * so the hot path does no lookups it could have done at load time.
 */
import type { V1Container, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { LabelSelector } from './selector.js';

export interface ProfileOverrides {
  /** Pods may set `<container>.cpu-request` and friends. */
  resources: boolean;
  /** Image overrides are allowed only from these prefixes; empty forbids them. */
  imageRegistries: string[];
}

/** true: native sidecars (restartPolicy: Always init containers); auto: native where the API server supports them. */
export type NativeSidecar = boolean | 'auto';

export interface Profile {
  nativeSidecar: NativeSidecar;
  containers: V1Container[];
  initContainers: V1Container[];
  volumes: V1Volume[];
  appVolumeMounts: V1VolumeMount[];
  overrides: ProfileOverrides;
}

/** The resources `tenantProfiles.maxResources` may cap. */
export const CEILING_RESOURCES = ['cpu', 'memory'] as const;
export type CeilingResource = (typeof CEILING_RESOURCES)[number];

/**
 * SPEC 9: the limits inside which a namespace's own SidecarProfiles must stay.
 * The fixed floor (privileged, capabilities, host access, volume kinds, the
 * restricted Pod Security Standard) is not configurable: see tenant-profile.ts.
 */
export interface TenantProfileLimits {
  /** true: SidecarProfiles are served. */
  enabled: boolean;
  /** The namespaces whose SidecarProfiles are served (excluded namespaces never); {} selects all. */
  namespaceSelector: LabelSelector;
  /** Every image (and image override prefix) must start with one of these, at a path boundary; empty: any registry. */
  allowedRegistries: string[];
  /** Per-container ceilings, as written (validated quantities): limits must be set and within, requests within. */
  maxResources: Partial<Record<CeilingResource, string>>;
}

export interface InjectorConfig {
  annotationPrefix: string;
  policy: 'opt-in' | 'opt-out';
  defaultProfiles: string[];
  excludeNamespaces: string[];
  neverInjectSelector: LabelSelector[];
  alwaysInjectSelector: LabelSelector[];
  onConflict: 'skip' | 'deny';
  allowPodOptOut: boolean;
  profiles: Record<string, Profile>;
  tenantProfiles: TenantProfileLimits;
}

/** Annotation and label keys derived from the prefix. */
export interface InjectorKeys {
  prefix: string;
  /** `<prefix>/inject`: the pod's wish, as a label or an annotation. */
  inject: string;
  /** `<prefix>/status`: written on injection; its presence makes admission a no-op. */
  status: string;
  /** `<prefix>/injection`: the namespace label (enabled | disabled). */
  namespaceInjection: string;
}

export interface CompiledConfig {
  config: InjectorConfig;
  /** Hash of the parsed file; recorded in the status annotation. */
  revision: string;
  keys: InjectorKeys;
  excludedNamespaces: ReadonlySet<string>;
}

export function compileConfig(config: InjectorConfig, revision: string): CompiledConfig {
  const prefix = config.annotationPrefix;
  return {
    config,
    revision,
    keys: {
      prefix,
      inject: `${prefix}/inject`,
      status: `${prefix}/status`,
      namespaceInjection: `${prefix}/injection`,
    },
    excludedNamespaces: new Set(config.excludeNamespaces),
  };
}
