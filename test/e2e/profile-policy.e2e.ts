/**
 * SidecarProfiles refused at write on a real kube-apiserver (issue 30): the
 * CRD from the chart's crds/, the ValidatingAdmissionPolicy compileProfilePolicy
 * makes of the limits applied as the writer applies it (server-side apply),
 * then profiles written with kubectl. What the policy-eval harness cannot
 * show: the API server's own validation of the policy when it is sent
 * (k8s.io/kubernetes pkg/apis/admissionregistration/validation, the CEL
 * environment of its compatibility version: 1.29 on a 1.30 server), its
 * CRD's schema before the policy, and kubectl's answer to a user.
 *
 *   npm run e2e -- test/e2e/profile-policy.e2e.ts
 *   KUBERNETES=1.30 npm run e2e -- test/e2e/profile-policy.e2e.ts
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { Profile } from '../../src/core/config.js';
import { compileProfilePolicy, profilePolicyName } from '../../src/core/profile-policy.js';
import { formatProblem, judgeProfile, TENANT_RULES, type ProfileLimits, type TenantRule } from '../../src/core/tenant-profile.js';
import { fingerprinted } from '../../src/kube/profile-policy-writer.js';
import { LIMITS, restrictedProfile, writtenTenantProfile } from '../helpers/tenant-profiles.js';
import { ApiServer } from './apiserver.js';
import { eventually, namespace } from './pods.js';
import { describeOn, SERVER } from './server.js';

const CRD_FILE = new URL('../../charts/sidecar-injector/crds/sidecarprofiles.yaml', import.meta.url);
const CRD = 'sidecarprofiles.sidecar-injector.io';
const NAME = 'si';
const POLICY = profilePolicyName(NAME);
const NS = 'shop';
const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);

const { describe } = describeOn({ minor: 30, why: 'ValidatingAdmissionPolicy v1 is served from 1.30' }, import.meta.url);

let kas: ApiServer;

interface Ran {
  ok: boolean;
  out: string;
}
function kubectl(args: string[], input?: string): Ran {
  const r = spawnSync('kubectl', ['--kubeconfig', kas.kubeconfig, ...args], { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

/** The policy for the limits, applied as ProfilePolicyWriter applies it. */
function applyPolicy(limits: ProfileLimits): Ran {
  const r = compileProfilePolicy(limits, NAME, { major: 1, minor: SERVER.minor });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  const list = { apiVersion: 'v1', kind: 'List', items: fingerprinted(r.objects).objects };
  return kubectl(['apply', '--server-side', '--field-manager=sidecar-injector', '--force-conflicts', '-f', '-'], JSON.stringify(list));
}

const profile = (spec: unknown, name = 'db-proxy', labels: Record<string, string> = {}) => ({ apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile', metadata: { name, namespace: NS, labels }, spec });

/** The first failing validation's message, from judgeProfile (as test/core/profile-policy.test.ts writes it). */
function firstMessage(spec: unknown, limits: ProfileLimits): string | undefined {
  const { problems } = judgeProfile(spec as Profile, limits);
  const rules = (Object.keys(TENANT_RULES) as TenantRule[]).filter((r) => problems.some((p) => p.rule === r));
  const rule = rules[0];
  if (!rule) return undefined;
  const others = rules.length > 1 ? `; other rules broken: ${rules.slice(1).join(', ')}` : '';
  return `${problems.filter((p) => p.rule === rule).map(formatProblem).join('; ')}${others}`;
}

describe(`SidecarProfiles refused at write (kube-apiserver ${SERVER.version})`, () => {
  beforeAll(async () => {
    kas = await ApiServer.start();
    kas.kubectl(['create', '-f', '-'], readFileSync(CRD_FILE, 'utf8'));
    kas.kubectl(['wait', '--for=condition=Established', `crd/${CRD}`, '--timeout=60s']);
    await namespace(kas, NS);
  }, 180_000);

  afterAll(async () => {
    await kas?.stop();
  });

  it('the API server takes the policy (its own validation: every expression compiled as a new one) and its binding', () => {
    expect(applyPolicy(LIMITS)).toMatchObject({ ok: true });
    expect(kubectl(['get', 'validatingadmissionpolicy,validatingadmissionpolicybinding', POLICY, '-o', 'name']).out.trim().split('\n')).toEqual([
      `validatingadmissionpolicy.admissionregistration.k8s.io/${POLICY}`,
      `validatingadmissionpolicybinding.admissionregistration.k8s.io/${POLICY}`,
    ]);
  });

  it('kubectl apply of a privileged profile fails at once, naming the field and the rule; the restricted one is created', async () => {
    const bad = restrictedProfile() as unknown as { containers: { securityContext: Record<string, unknown> }[] };
    bad.containers[0]!.securityContext.privileged = true;
    // A new policy takes the API server a moment to load.
    await eventually(() => !kubectl(['apply', '--dry-run=server', '-f', '-'], stringify(profile(bad))).ok, 'the policy in force', 30_000);
    const refused = kubectl(['apply', '-f', '-'], stringify(profile(bad)));
    expect(refused.ok).toBe(false);
    expect(refused.out).toContain(`ValidatingAdmissionPolicy '${POLICY}' with binding '${POLICY}' denied request: spec.containers[0].securityContext.privileged: must be false or unset, not true (rule privileged)`);
    expect(kubectl(['apply', '-f', '-'], stringify(profile(restrictedProfile())))).toMatchObject({ ok: true });
  });

  it('after tighter limits: a label on the stored profile is still written (its spec is not judged again), a change of its spec is refused', async () => {
    expect(applyPolicy({ ...LIMITS, maxResources: { cpu: '100m', memory: '256Mi' } })).toMatchObject({ ok: true });
    const changed = restrictedProfile() as unknown as { nativeSidecar: unknown };
    changed.nativeSidecar = true;
    await eventually(() => !kubectl(['apply', '--dry-run=server', '-f', '-'], stringify(profile(changed))).ok, 'the tighter policy in force', 30_000);
    expect(kubectl(['label', 'sidecarprofile', 'db-proxy', '-n', NS, 'team=db'])).toMatchObject({ ok: true });
    const refused = kubectl(['apply', '-f', '-'], stringify(profile(changed, 'db-proxy', { team: 'db' })));
    expect(refused.out).toContain('spec.containers[0].resources.limits.cpu: 500m is above the ceiling 100m (rule maxResources)');
    expect(applyPolicy(LIMITS)).toMatchObject({ ok: true });
  });

  it(`${RUNS} generated profiles (server-side dry run): refused exactly when judgeProfile refuses, with its words`, async () => {
    const specs = fc.sample(writtenTenantProfile, { seed: 20261232, numRuns: RUNS });
    // The policy back at LIMITS: wait until a profile only the looser ceiling accepts passes again.
    await eventually(() => kubectl(['apply', '--dry-run=server', '-f', '-'], stringify(profile(restrictedProfile(), 'probe'))).ok, 'the looser policy in force', 30_000);
    for (const [i, spec] of specs.entries()) {
      const ran = kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(profile(spec, `p${i}`)));
      // What the API server holds after its schema (pruning, defaults) is what the policy and judgeProfile see.
      const want = ran.ok ? firstMessage((JSON.parse(ran.out) as { spec: unknown }).spec, LIMITS) : undefined;
      if (ran.ok) expect([i, want]).toEqual([i, undefined]);
      else if (/denied request/.test(ran.out)) {
        const expected = firstMessage(JSON.parse(JSON.stringify(spec)), LIMITS);
        expect([i, ran.out]).toEqual([i, expect.stringContaining(`denied request: ${expected}`)]);
      } else throw new Error(`profile ${i} refused by the CRD's schema, not the policy: ${ran.out}\n${JSON.stringify(spec)}`);
    }
  }, 600_000);
});
