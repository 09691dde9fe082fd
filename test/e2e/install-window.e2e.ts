/**
 * The install window (issue 32) on a real kube-apiserver: a fresh install,
 * done in Helm's order (the certgen hook runs, then every other object is
 * applied at once, the webhook configuration among them), with pods created
 * without pause from the moment the objects are applied, and the two
 * replicas started as the Deployment's pods would be. The webhook
 * configuration points from the start at a "Service" (a loopback relay)
 * that routes only to replicas whose /readyz answers 200, as endpoints do.
 *
 * Measured and printed: when the first pod was injected, how long pods were
 * refused (and which: asking or not), how many pods that ask were admitted
 * without sidecars, and how long the replicas' probe took to show the API
 * server uses the caBundle. Asserted: every pod that asks and was admitted
 * without its sidecars is reported `missed` by `audit`; the probe worked on
 * the real server (nothing `unconfirmed`); with the chart as it is
 * at Fail from the start (before this change), refusals only before the first injection and no pod
 * that asks admitted without sidecars once the API server had the
 * configuration; with the chart as it renders a fresh install (webhooks `Ignore`, the
 * wanted policy in the `sidecar-injector.io/failure-policy` annotation,
 * written by the replicas once the API server has called the webhook: see
 * docs/install.md), no refusal at all, and Fail written.
 *
 * Not measured here: image pulls, scheduling, kubelet's readiness period and
 * endpoint propagation, which a real cluster adds to the window.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { FAILURE_POLICY_ANNOTATION } from '../../src/kube/ca-bundle.js';
import { parsePrometheus, sampleValue } from '../helpers/ops.js';
import { runCli } from '../helpers/process.js';
import { startLoopbackService, type LoopbackService } from '../helpers/service.js';
import { ApiServer } from './apiserver.js';
import { Install, NS, RELEASE, SERVICE_HOST } from './install.js';
import { eventually, namespace, pod, type Pod } from './pods.js';

const WINDOW_NS = 'e2e-window';
/** Bound on the window in this model (no image pull, no scheduling): process start, certgen done before. */
const WINDOW_BOUND_MS = 30_000;

type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; webhooks?: { failurePolicy?: string; clientConfig: Record<string, unknown> }[] };

interface Creation {
  asks: boolean;
  name: string;
  started: number;
  ended: number;
  outcome: 'injected' | 'uninjected' | 'refused';
  message?: string;
}

const injected = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'log-shipper');

/** Pod creations without pause by `workers` loops per kind (asking, not asking), each result timed, until stopped. */
function creating(kas: ApiServer, workers: number) {
  const log: Creation[] = [];
  let running = true;
  const loop = async (asks: boolean) => {
    while (running) {
      const p = pod(WINDOW_NS, '', asks ? { annotations: { 'sidecar-injector.io/inject': 'true' } } : {});
      delete (p.metadata as { name?: string }).name;
      p.metadata.generateName = asks ? 'ask-' : 'plain-';
      const started = Date.now();
      const a = await kas.call('POST', `/api/v1/namespaces/${WINDOW_NS}/pods`, p).catch((err: Error) => ({ status: 0, body: { message: err.message } as Record<string, unknown> }));
      const ended = Date.now();
      if (a.status === 409 && a.body.reason === 'AlreadyExists') continue; // a generated name clashed; the controller would retry
      if (a.status === 201) {
        const stored = a.body as unknown as Pod;
        log.push({ asks, name: stored.metadata.name!, started, ended, outcome: injected(stored) ? 'injected' : 'uninjected' });
      } else log.push({ asks, name: '', started, ended, outcome: 'refused', message: `${a.status} ${String(a.body.message)}` });
    }
  };
  const loops = [...Array.from({ length: workers }, () => loop(true)), ...Array.from({ length: workers }, () => loop(false))];
  return {
    log,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Ports of the replicas whose /readyz answered 200 at the last poll (every 100 ms): the Service's endpoints. */
function endpoints(install: Install) {
  const ready = new Set<number>();
  /** When each replica (by port) was first seen ready. */
  const since = new Map<number, number>();
  let polling = true;
  const done = (async () => {
    while (polling) {
      for (const r of install.replicas) {
        const ok = await fetch(`http://127.0.0.1:${r.metricsPort}/readyz`).then((a) => a.status === 200, () => false);
        if (ok) ready.add(r.port);
        else ready.delete(r.port);
        if (ok && !since.has(r.port)) since.set(r.port, Date.now());
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  return {
    ports: () => [...ready],
    since,
    stop: async () => {
      polling = false;
      await done;
    },
  };
}

interface Window {
  kas: ApiServer;
  install: Install;
  log: Creation[];
  applied: number;
  /** When the test saw every real webhook at Fail (the proposed chart), if it did. */
  armedSeen?: number;
  missed: Set<string>;
  unconfirmed: number;
  probeMs: number[];
  /** Per replica, epoch ms: first log line (the process is up), serving, the API server shown to use the caBundle, first seen ready. */
  timeline: { up?: number; serving?: number; inUse?: number; ready?: number }[];
}

let plane: ApiServer | undefined;
let installation: Install | undefined;
let service: LoopbackService | undefined;
afterEach(async () => {
  await service?.close();
  await installation?.stop();
  await plane?.stop();
  [service, installation, plane] = [undefined, undefined, undefined];
});

/**
 * A fresh install on a new control plane, `edit` applied to the rendered objects first (the proposed chart);
 * pods created from the moment the objects are applied until both replicas are ready, a pod that asks has been
 * injected and (when `until` says so) more; then `audit`.
 */
async function installWindow(edit: (docs: Doc[]) => void, until: (w: { log: Creation[]; mwc: () => Promise<Doc> }) => Promise<boolean>): Promise<Window> {
  const kas = (plane = await ApiServer.start());
  await namespace(kas, WINDOW_NS);
  const install = (installation = new Install(kas, {}));
  const ready = endpoints(install);
  service = await startLoopbackService(ready.ports);
  // The hosts entry for the Service's name (its own relay stays unused: ours routes to ready replicas only).
  await install.startService();
  const docs = install.docs as unknown as Doc[];
  const mwc = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
  for (const w of mwc.webhooks ?? []) w.clientConfig = { url: `https://${SERVICE_HOST}:${service.port}/mutate` };
  edit(docs);
  const apply = (set: Doc[]) => kas.kubectl(['apply', '--server-side', '--field-manager=helm', '-f', '-'], set.map((d) => `---\n${stringify(d)}`).join(''));
  const hook = (d: Doc) => d.metadata.annotations?.['helm.sh/hook'] !== undefined;
  // Helm's order: the namespace, the pre-install hooks and the certgen Job's run, then everything else at once.
  kas.kubectl(['create', 'namespace', NS]);
  kas.kubectl(['-n', NS, 'create', 'serviceaccount', 'default']);
  apply(docs.filter(hook));
  await install.certgen();
  apply(docs.filter((d) => !hook(d)));
  const applied = Date.now();
  const load = creating(kas, 2);
  const readMwc = async () => (await kas.must('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}`)) as unknown as Doc;
  try {
    // The Deployment's two pods, started together.
    const replicas = await Promise.all([install.startReplica(), install.startReplica()]);
    await Promise.all(replicas.map((r) => install.ready(r)));
    await eventually(() => until({ log: load.log, mwc: readMwc }), 'the window to close', 60_000);
  } finally {
    await load.stop();
    await ready.stop();
  }
  const audit = await runCli(['audit', '-n', WINDOW_NS, '-o', 'json', '--kubeconfig', kas.kubeconfig]);
  const report = JSON.parse(audit.stdout) as { workloads: { kind: string; name: string; state: string; examples: string[] }[] };
  const missed = new Set(report.workloads.filter((w) => w.state === 'missed').flatMap((w) => w.examples));
  let unconfirmed = 0;
  for (const r of install.replicas) {
    const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
    unconfirmed += sampleValue(parsePrometheus(text), 'sidecar_injector_ca_bundle_writes_total', { result: 'unconfirmed' }) ?? 0;
  }
  const probeMs = install.replicas.flatMap((r) => r.proc.lines.filter((l) => l.msg === 'the API server uses the caBundle').map((l) => Number(l.afterMs)));
  const at = (r: Install['replicas'][number], msg: string) => r.proc.lines.find((l) => l.msg === msg)?.time as number | undefined;
  const timeline = install.replicas.map((r) => ({ up: r.proc.lines[0]?.time as number | undefined, serving: at(r, 'serving /mutate over HTTPS'), inUse: at(r, 'the API server uses the caBundle'), ready: ready.since.get(r.port) }));
  return { kas, install, log: load.log, applied, missed, unconfirmed, probeMs, timeline };
}

/** The measurements, one line, printed. */
function report(what: string, w: Window): { firstInjected: number; refused: Creation[]; uninjectedAsking: Creation[] } {
  const rel = (t: number) => `${((t - w.applied) / 1000).toFixed(2)} s`;
  const first = w.log.filter((c) => c.outcome === 'injected').sort((a, b) => a.ended - b.ended)[0];
  const refused = w.log.filter((c) => c.outcome === 'refused');
  const uninjectedAsking = w.log.filter((c) => c.asks && c.outcome === 'uninjected');
  const last = (list: Creation[]) => (list.length ? rel(Math.max(...list.map((c) => c.ended))) : '-');
  process.stderr.write(
    `install window on kube-apiserver ${w.kas.version}, ${what}: first injection ${first ? rel(first.ended) : 'never'} after the objects were applied; ` +
      `refused ${refused.filter((c) => c.asks).length} pods that ask and ${refused.filter((c) => !c.asks).length} that do not (last at ${last(refused)}); ` +
      `admitted without sidecars ${uninjectedAsking.length} pods that ask (last at ${last(uninjectedAsking)}), ${uninjectedAsking.filter((c) => w.missed.has(c.name)).length} reported missed by audit; ` +
      `${w.log.length} creations; probe showed the caBundle in use after ${w.probeMs.join(', ') || '-'} ms; ` +
      `replicas (process up / serving / caBundle in use / ready): ${w.timeline.map((t) => [t.up, t.serving, t.inUse, t.ready].map((x) => (x ? rel(x) : '-')).join(' / ')).join('; ')}` +
      `${w.armedSeen ? `; failurePolicy Fail seen at ${rel(w.armedSeen)}` : ''}` +
      `${refused[0]?.message ? `; a refusal: ${refused[0].message.slice(0, 200)}` : ''}\n`,
  );
  return { firstInjected: first?.ended ?? Infinity, refused, uninjectedAsking };
}

/** A pod that asks has been injected after both replicas were ready, and more than `n` in all. */
const injectedSome = (n: number) => async ({ log }: { log: Creation[] }) => log.filter((c) => c.outcome === 'injected').length > n;

describe('the install window (fresh install, pods created from the moment the objects are applied)', () => {
  it('webhooks at Fail from the start (the chart before this change; cert-manager mode): refusals only until the first injection, then none; no pod that asks admitted without sidecars unless audit reports it', async () => {
    const w = await installWindow((docs) => {
      const mwc = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
      delete mwc.metadata.annotations?.[FAILURE_POLICY_ANNOTATION];
      for (const hook of mwc.webhooks ?? []) hook.failurePolicy = 'Fail';
    }, injectedSome(20));
    const { firstInjected, refused, uninjectedAsking } = report('webhooks at Fail from the start', w);
    expect(firstInjected - w.applied).toBeLessThan(WINDOW_BOUND_MS);
    // One window at the start: nothing refused that was sent after the first injection came back.
    expect(refused.filter((c) => c.started > firstInjected).map((c) => c.message)).toEqual([]);
    // Without sidecars only before the API server had the configuration (the first refusal or injection).
    const firstCalled = Math.min(firstInjected, ...refused.map((c) => c.ended));
    expect(uninjectedAsking.filter((c) => c.started > firstCalled).map((c) => c.name)).toEqual([]);
    expect(uninjectedAsking.filter((c) => !w.missed.has(c.name)).map((c) => c.name)).toEqual([]);
    // The probe worked on the real server: the replicas saw the caBundle in use, none went on at the bound.
    expect(w.unconfirmed).toBe(0);
    expect(w.probeMs.length).toBeGreaterThan(0);
  }, 240_000);

  it('the chart as it is (Ignore until a replica writes Fail once the webhook answers): no pod refused; those admitted without sidecars are all reported missed; Fail written', async () => {
    let armedSeen: number | undefined;
    const w = await installWindow(
      (docs) => {
        const mwc = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
        // What a fresh install renders (charts/.../mutatingwebhookconfiguration.yaml): nothing to edit.
        expect(mwc.metadata.annotations?.[FAILURE_POLICY_ANNOTATION]).toBe('Fail');
        expect((mwc.webhooks ?? []).map((h) => h.failurePolicy)).toEqual(['Ignore', 'Ignore']);
      },
      async ({ log, mwc }) => {
        if (armedSeen === undefined && (await mwc()).webhooks!.every((h) => h.failurePolicy === 'Fail')) armedSeen = Date.now();
        // Pods that ask created after Fail was seen: they are what Fail protects.
        return armedSeen !== undefined && log.filter((c) => c.asks && c.started > armedSeen! && c.outcome === 'injected').length >= 10;
      },
    );
    w.armedSeen = armedSeen;
    const { refused, uninjectedAsking } = report('the chart as it is (Ignore, then Fail written by the replicas)', w);
    expect(refused.map((c) => c.message)).toEqual([]);
    expect(uninjectedAsking.filter((c) => !w.missed.has(c.name)).map((c) => c.name)).toEqual([]);
    expect(armedSeen! - w.applied).toBeLessThan(WINDOW_BOUND_MS);
    expect(uninjectedAsking.filter((c) => c.started > armedSeen!).map((c) => c.name)).toEqual([]);
    expect(w.unconfirmed).toBe(0);
  }, 240_000);
});
