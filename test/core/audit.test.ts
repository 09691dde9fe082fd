import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { AuditReport, classifyPod, remedy } from '../../src/core/audit.js';
import { admitPod } from '../../src/core/admit.js';
import { testConfig } from '../helpers/configs.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { applyJsonPatch } from '../helpers/patch-engine.js';

const server = { nativeSidecars: true };
const config = testConfig();
const running = (mutate?: (p: V1Pod) => void) =>
  apiserverPod((p) => {
    p.metadata!.name = 'web-7d4b9c8f6-abcde';
    p.status = { phase: 'Running' };
    mutate?.(p);
  });
const injectedPod = (c = config) => {
  const pod = running();
  const out = admitPod(pod, { namespace: 'shop', namespaceLabels: undefined, server }, c);
  if (out.decision !== 'injected') throw new Error(out.reason);
  return applyJsonPatch(pod, out.patch);
};

describe('classifyPod: the webhook rules over a running pod', () => {
  it('missed: the rules would inject and there is no status annotation', () => {
    expect(classifyPod(running(), undefined, config, server).state).toBe('missed');
    const quiet = running((p) => delete p.metadata!.annotations!['sidecar-injector.io/inject']);
    expect(classifyPod(quiet, undefined, config, server).state).toBe('fine');
    // Rule 7 with the namespace's live labels.
    expect(classifyPod(quiet, { 'sidecar-injector.io/injection': 'enabled' }, config, server).state).toBe('missed');
  });

  it('injected with the config in force; stale under another revision', () => {
    const pod = injectedPod();
    expect(classifyPod(pod, undefined, config, server).state).toBe('injected');
    const changed = testConfig('onConflict: deny');
    expect(changed.revision).not.toBe(config.revision);
    const verdict = classifyPod(pod, undefined, changed, server);
    expect(verdict.state).toBe('stale');
    expect(verdict.reason).toContain(config.revision);
  });

  it('conflict: the rules would inject but the pod already uses the name', () => {
    const pod = running((p) => p.spec!.containers.push({ name: 'log-shipper', image: 'mine:1' }));
    expect(classifyPod(pod, undefined, config, server)).toMatchObject({ state: 'conflict' });
  });

  it('finished pods and static (mirror) pods need nothing', () => {
    expect(classifyPod(running((p) => (p.status = { phase: 'Succeeded' })), undefined, config, server).state).toBe('fine');
    expect(classifyPod(running((p) => (p.metadata!.annotations!['kubernetes.io/config.mirror'] = 'abc')), undefined, config, server).state).toBe('fine');
  });
});

describe('AuditReport', () => {
  it('groups pods by workload and state, keeps three examples, and fails only on missed or stale', () => {
    const r = new AuditReport();
    const web = { namespace: 'shop', kind: 'Deployment', name: 'web' };
    for (let i = 0; i < 5; i++) r.add(`web-${i}`, web, { state: 'missed', reason: 'x' });
    r.add('db-0', { namespace: 'shop', kind: 'StatefulSet', name: 'db' }, { state: 'conflict', reason: 'port 8080/TCP is used twice' });
    r.add('ok', { namespace: '', kind: '', name: '' }, { state: 'injected', reason: '' });
    r.add('quiet', { namespace: '', kind: '', name: '' }, { state: 'fine', reason: '' });
    expect(r.counts).toEqual({ pods: 8, missed: 5, stale: 0, orphaned: 0, conflict: 1, injected: 1 });
    const [first, second] = r.workloads();
    expect(first).toMatchObject({ kind: 'Deployment', name: 'web', state: 'missed', pods: 5, examples: ['web-0', 'web-1', 'web-2'], action: 'kubectl rollout restart deployment/web -n shop' });
    expect(second!.action).toContain('resolve the conflict');
    expect(r.failing).toBe(true);
    const clean = new AuditReport();
    clean.add('db-0', { namespace: 'shop', kind: 'StatefulSet', name: 'db' }, { state: 'conflict', reason: 'r' });
    expect(clean.failing).toBe(false);
  });

  it('says what to do per kind of workload', () => {
    expect(remedy({ namespace: 'n', kind: 'CronJob', name: 'c' }, 'missed', '')).toContain('kubectl create job --from=cronjob/c -n n');
    expect(remedy({ namespace: 'n', kind: 'Pod', name: 'p' }, 'stale', '')).toContain('kubectl delete pod p -n n');
    expect(remedy({ namespace: 'n', kind: 'DaemonSet', name: 'd' }, 'stale', '')).toBe('kubectl rollout restart daemonset/d -n n');
  });
});
