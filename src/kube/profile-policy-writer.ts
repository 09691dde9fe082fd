/**
 * Tenant profiles refused at write (SPEC 9, issue 30): keeps the
 * ValidatingAdmissionPolicy on SidecarProfiles and its binding
 * (core/profile-policy.ts, `<name>-sidecarprofiles`) in force on the API
 * server, compiled from the config in force: written at start and after each
 * reload that changes the limits, checked again now and then (a policy deleted
 * by hand comes back), removed when `tenantProfiles.enabled` is false. In the
 * background (SyncLoop: retried with backoff), never on the admission path.
 *
 * As policy-writer.ts writes policy mode's objects: server-side apply with our
 * field manager, the objects fingerprinted with what was compiled, so a
 * replica that finds them in place, or a reload that leaves the limits alone,
 * writes nothing. The policy before its binding (a binding never names a
 * policy that is not there), the binding removed first.
 *
 * Servers before 1.30 have no ValidatingAdmissionPolicy v1: nothing is
 * written there (`unsupported`, logged once), and profiles are judged by their
 * status condition only (SPEC 9). With no version given, the API server is
 * asked (/version), and a server that answers 404 for the resource counts as
 * such a server. A policy the API server refuses (422) is logged and counted
 * (`rejected`); the objects in force stay.
 */
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import { atLeast, plainGitVersion, versionFields, type KubeVersion } from '../core/kube-version.js';
import type { PolicyObject } from '../core/policy.js';
import { compileProfilePolicy, PROFILE_POLICY_SINCE, profilePolicyName } from '../core/profile-policy.js';
import { KubeError, type KubeClient } from './client.js';
import { applyObject, FINGERPRINT, fingerprintOf, liveFingerprint, removeObject } from './policy-writer.js';
import { SyncLoop } from './sync-loop.js';

export type ProfilePolicyWriteResult = 'applied' | 'unchanged' | 'removed' | 'unsupported' | 'rejected' | 'failure';

export interface ProfilePolicyWriterOptions {
  client: KubeClient;
  /** The objects are `<name>-sidecarprofiles` (the release name, as the chart's RBAC names them). */
  name: string;
  /** The API server's version (--kube-version, or what the feature probe learnt); without it /version is asked. */
  kubeVersion?: KubeVersion;
  logger: Logger;
  onResult(result: ProfilePolicyWriteResult): void;
  /** How often what is in force is checked again without a reload (default 60 s). */
  checkEveryMs?: number;
  backoffInitialMs?: number;
}

const API_VERSION = 'admissionregistration.k8s.io/v1';

/** The policy and its binding by name only: what is removed (bindings first). */
function namedObjects(name: string): PolicyObject[] {
  const metadata = { name: profilePolicyName(name), labels: {} };
  return ['ValidatingAdmissionPolicyBinding', 'ValidatingAdmissionPolicy'].map((kind) => ({ apiVersion: API_VERSION, kind, metadata, spec: {} }));
}

/** The objects as they are written: each annotated with the fingerprint of what was compiled. Pure. */
export function fingerprinted(objects: readonly PolicyObject[]): { fingerprint: string; objects: PolicyObject[] } {
  const fingerprint = fingerprintOf(objects);
  return { fingerprint, objects: objects.map((o) => ({ ...structuredClone(o), metadata: { ...structuredClone(o.metadata), annotations: { [FINGERPRINT]: fingerprint } } })) };
}

export class ProfilePolicyWriter {
  private readonly loop: SyncLoop;
  private readonly log: Logger;
  private compiled: CompiledConfig | undefined;
  private version: KubeVersion | undefined;
  /** `unsupported` is logged once per process. */
  private toldUnsupported = false;

  constructor(private readonly opts: ProfilePolicyWriterOptions) {
    this.log = opts.logger.child({ policy: profilePolicyName(opts.name) });
    this.version = opts.kubeVersion;
    this.loop = new SyncLoop(async () => opts.onResult(await this.writeOnce()), {
      logger: this.log,
      what: 'SidecarProfile policy',
      backoffInitialMs: opts.backoffInitialMs,
      onFailure: () => opts.onResult('failure'),
    });
  }

  /** Writes what the config asks for now, then checks it again every `checkEveryMs`. */
  start(compiled: CompiledConfig): void {
    this.compiled = compiled;
    this.loop.every(this.opts.checkEveryMs ?? 60_000);
  }

  /** The config was reloaded: written if the limits (or `enabled`) changed, else nothing. */
  update(compiled: CompiledConfig): void {
    this.compiled = compiled;
    this.loop.sync();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Resolves true once every write asked so far is done, false if stopped or `boundMs` passes first. */
  settled(boundMs: number): Promise<boolean> {
    return this.loop.settled(boundMs);
  }

  /** The API server's version: given, or asked once; undefined when /version does not tell. */
  private async serverVersion(): Promise<KubeVersion | undefined> {
    if (this.version) return this.version;
    const { body } = await this.opts.client.request('GET', '/version', { timeoutMs: 10_000 });
    const info = body as { gitVersion?: unknown; major?: unknown; minor?: unknown };
    this.version = versionFields(info.major, info.minor) ?? (typeof info.gitVersion === 'string' ? plainGitVersion(info.gitVersion) : undefined);
    return this.version;
  }

  private unsupported(why: string): ProfilePolicyWriteResult {
    if (!this.toldUnsupported) this.log.warn({ why }, 'no ValidatingAdmissionPolicy v1 (Kubernetes 1.30+): SidecarProfiles are not refused at write, only judged in their status condition');
    this.toldUnsupported = true;
    return 'unsupported';
  }

  private async writeOnce(): Promise<ProfilePolicyWriteResult> {
    const compiled = this.compiled;
    if (!compiled) return 'unchanged';
    const limits = compiled.config.tenantProfiles;
    if (!limits.enabled) {
      let removed = false;
      for (const o of namedObjects(this.opts.name)) removed = (await removeObject(this.opts.client, o)) || removed;
      if (removed) this.log.info({ revision: compiled.revision }, 'tenantProfiles.enabled is false: the SidecarProfile policy is removed');
      return removed ? 'removed' : 'unchanged';
    }
    const version = (await this.serverVersion()) ?? PROFILE_POLICY_SINCE;
    if (!atLeast(version, PROFILE_POLICY_SINCE)) return this.unsupported(`Kubernetes ${version.major}.${version.minor}`);
    const result = compileProfilePolicy(limits, this.opts.name, version);
    if (!result.ok) {
      this.log.error({ problems: result.problems, revision: compiled.revision }, 'the limits cannot be compiled into the SidecarProfile policy; the policy in force stays');
      return 'rejected';
    }
    const { fingerprint, objects } = fingerprinted(result.objects);
    const live = await Promise.all(objects.map((o) => liveFingerprint(this.opts.client, o)));
    if (live.every((f) => f === fingerprint)) return 'unchanged';
    try {
      // Objects come policy first, binding second: a binding never names a policy that is not there.
      for (const o of objects) await applyObject(this.opts.client, o);
    } catch (err) {
      if (!(err instanceof KubeError) || err.status >= 500 || err.status === 429) throw err;
      if (err.status === 404) return this.unsupported(`the API server does not serve ${API_VERSION} ValidatingAdmissionPolicies`);
      this.log.error({ err: err.message, status: err.status, revision: compiled.revision, fingerprint }, 'the API server refused the SidecarProfile policy; the policy in force stays');
      return 'rejected';
    }
    this.log.info({ revision: compiled.revision, fingerprint, objects: objects.map((o) => `${o.kind}/${o.metadata.name}`) }, 'SidecarProfile policy in force');
    return 'applied';
  }
}
