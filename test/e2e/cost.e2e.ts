/**
 * What pod creation costs at the API server (issue 24), measured on a real
 * kube-apiserver 1.36: p50/p90/p99 of 300 sequential creations over one
 * keep-alive connection, with no injector installed (a plain pod, and the
 * same pod already injected: the floor for an injected pod), then with the chart's
 * webhook for a pod that does not ask (kept out by matchConditions) and for
 * an injected pod; then 16 concurrent creators making 2,000 injected pods,
 * which must all succeed. Printed as a table; written as JSON to
 * $E2E_COST_OUT when set (`npm run bench -- --apiserver` does).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { admitPod } from '../../src/core/admit.js';
import { compile } from '../helpers/configs.js';
import { ApiServer } from './apiserver.js';
import { installed, type Install } from './install.js';
import { namespace, pod, type Pod } from './pods.js';
import { describeOn, NEEDS } from './server.js';

const policyIt = describeOn(NEEDS.mutatingAdmissionPolicy, import.meta.url, 'the policy rows').applies ? it : it.skip;

const SEQUENTIAL = Number(process.env.E2E_COST_SEQUENTIAL ?? 300);
const CONCURRENT_PODS = Number(process.env.E2E_COST_CONCURRENT ?? 2000);
const CREATORS = 16;
/** Namespaces labelled MODE=policy are the policy's; the webhook's configuration leaves them out. */
const MODE = 'e2e-mode';

let kas: ApiServer;
let install: Install | undefined;
const rows: { case: string; n: number; p50: number; p90: number; p99: number; errors: number; perSecond?: number }[] = [];

beforeAll(async () => {
  kas = await ApiServer.start();
}, 60_000);

afterAll(async () => {
  await install?.stop();
  kas?.stop();
  const table = [
    `pod creation on kube-apiserver ${kas.version} (ms)`,
    'case                                   n     p50     p90     p99  errors  pods/s',
    ...rows.map((r) => `${r.case.padEnd(36)} ${String(r.n).padStart(5)} ${r.p50.toFixed(2).padStart(7)} ${r.p90.toFixed(2).padStart(7)} ${r.p99.toFixed(2).padStart(7)} ${String(r.errors).padStart(7)} ${r.perSecond === undefined ? '' : r.perSecond.toFixed(0).padStart(7)}`),
  ].join('\n');
  process.stderr.write(`${table}\n`);
  if (process.env.E2E_COST_OUT) writeFileSync(process.env.E2E_COST_OUT, JSON.stringify({ date: new Date().toISOString(), server: kas.version, rows }, null, 2));
});

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const injected = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'log-shipper');

/** Creates pods one after another (or `workers` at a time) and records each creation's latency. */
async function measure(name: string, ns: string, n: number, make: (i: number) => Pod, expectInjected: boolean, workers = 1): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        const a = await kas.call('POST', `/api/v1/namespaces/${ns}/pods`, make(i));
        latencies.push(performance.now() - t);
        if (a.status !== 201 || injected(a.body as unknown as Pod) !== expectInjected) errors += 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  rows.push({ case: name, n, p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), errors, ...(workers > 1 ? { perSecond: n / seconds } : {}) });
  expect(errors).toBe(0);
}

const named = (prefix: string, meta?: Parameters<typeof pod>[2]) => (i: number) => pod('', `${prefix}-${i}`, meta);
const inNs = (ns: string, make: (i: number) => Pod) => (i: number) => {
  const p = make(i);
  p.metadata.namespace = ns;
  return p;
};

describe('pod creation cost at the API server', () => {
  it('no injector installed', async () => {
    await namespace(kas, 'e2e-cost');
    await measure('no injector', 'e2e-cost', SEQUENTIAL, inNs('e2e-cost', named('none')), false);
    // The floor for an injected pod: the same pod made injected beforehand (the chart's default config,
    // by the core), created with nothing installed. What storing the bigger pod costs, with no admission of ours.
    const example = compile(readFileSync(new URL('../../config/example.yaml', import.meta.url), 'utf8'));
    const asks = inNs('e2e-cost', named('pre', { annotations: { 'sidecar-injector.io/inject': 'true' } }));
    await measure('already injected, no injector (floor)', 'e2e-cost', SEQUENTIAL, (i) => {
      const out = admitPod(asks(i), { namespace: 'e2e-cost', namespaceLabels: {}, server: { nativeSidecars: true } }, example);
      if (out.decision !== 'injected') throw new Error(`the example config did not inject: ${out.reason}`);
      return out.pod as Pod;
    }, true);
  }, 180_000);

  it('with the webhook: a pod that does not ask, and an injected pod', async () => {
    ({ install } = await installed({ webhook: { namespaceSelectorExpressions: [{ key: MODE, operator: 'NotIn', values: ['policy'] }] } }, kas));
    await measure('webhook, pod does not ask', 'e2e-cost', SEQUENTIAL, inNs('e2e-cost', named('plain')), false);
    await measure('webhook, injected pod', 'e2e-cost', SEQUENTIAL, inNs('e2e-cost', named('asks', { annotations: { 'sidecar-injector.io/inject': 'true' } })), true);
  }, 300_000);

  policyIt('with the policy instead (MutatingAdmissionPolicy, in-process): a pod that does not ask, and an injected pod', async () => {
    await install!.applyPolicy(MODE);
    await namespace(kas, 'e2e-cost-policy', { [MODE]: 'policy' });
    const probe = inNs('e2e-cost-policy', named('probe', { annotations: { 'sidecar-injector.io/inject': 'true' } }));
    for (let i = 0; ; i++) {
      const a = await kas.call('POST', '/api/v1/namespaces/e2e-cost-policy/pods', probe(i));
      if (a.status === 201 && injected(a.body as unknown as Pod)) break;
      if (i > 200) throw new Error('the policy never took effect');
      await new Promise((r) => setTimeout(r, 100)); // the API server loads a new policy within a second or so
    }
    await measure('policy, pod does not ask', 'e2e-cost-policy', SEQUENTIAL, inNs('e2e-cost-policy', named('plain')), false);
    await measure('policy, injected pod', 'e2e-cost-policy', SEQUENTIAL, inNs('e2e-cost-policy', named('asks', { annotations: { 'sidecar-injector.io/inject': 'true' } })), true);
  }, 300_000);

  it(`${CREATORS} concurrent creators, ${CONCURRENT_PODS} injected pods, no error`, async () => {
    await measure(`webhook, injected, ${CREATORS} at once`, 'e2e-cost', CONCURRENT_PODS, inNs('e2e-cost', named('burst', { annotations: { 'sidecar-injector.io/inject': 'true' } })), true, CREATORS);
  }, 300_000);
});
