/**
 * The chart's ServiceMonitor, PrometheusRule and Grafana dashboard, checked
 * with the real tool: promtool (pinned in tools/promtool/go.mod) checks the
 * rendered rules and runs a unit test per alert (fires when it should, not
 * when it should not); every dashboard query must parse as PromQL (checked
 * as a recording rule) and name only metrics the webhook exports.
 */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { createMetrics } from '../../src/ops/metrics.js';
import { render, valuesFile } from './render.js';

const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasPromtool) throw new Error('the monitoring tests need promtool on PATH: npm test builds the pinned one (scripts/tools.mjs promtool)');

type Doc = { kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, unknown>;
const rendered = render([valuesFile('monitoring')]);
if (!rendered.ok) throw new Error(rendered.stderr);
const docs = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Doc);
const one = (kind: string) => docs.find((d) => d.kind === kind && (kind !== 'ConfigMap' || d.metadata.name.endsWith('-dashboard')))!;

function promtool(args: string[], files: Record<string, string>): { code: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'promtool-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = spawnSync('promtool', args, { cwd: dir, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Every metric name the webhook exports (histograms with their series suffixes). */
async function exported(): Promise<Set<string>> {
  const names = new Set<string>();
  const metrics = createMetrics();
  metrics.caTrust(true, 1); // registered by the first caBundle check
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
  }
  return names;
}
const namesIn = (expr: string) => [...expr.matchAll(/\bsidecar_injector_[a-z_]+\b/g)].map((m) => m[0]);

const groups = (one('PrometheusRule').spec as { groups: { name: string; rules: { alert: string; expr: string }[] }[] }).groups;
const RULES = stringify({ groups });

describe('PrometheusRule', () => {
  it('passes promtool check rules, and names only exported metrics', async () => {
    const r = promtool(['check', 'rules', 'rules.yaml'], { 'rules.yaml': RULES });
    expect(r.out).toContain('SUCCESS: 6 rules found');
    expect(r.code).toBe(0);
    const names = await exported();
    for (const rule of groups[0]!.rules) for (const n of namesIn(rule.expr)) expect(names).toContain(n);
    expect(groups[0]!.rules.map((r) => r.alert)).toEqual([
      'SidecarInjectorAdmissionErrors',
      'SidecarInjectorMissedPods',
      'SidecarInjectorCertificateExpiringSoon',
      'SidecarInjectorConfigReloadFailing',
      'SidecarInjectorNamespaceCacheNotSynced',
      'SidecarInjectorCaNotTrusted',
    ]);
  });

  it('each alert fires when it should and not when it should not (promtool test rules)', () => {
    const ns = 'namespace="sidecar-injector"';
    const annotations = (alert: string, description: string) => {
      const rule = groups[0]!.rules.find((r) => r.alert === alert) as unknown as { annotations: { summary: string } };
      return { summary: rule.annotations.summary, description };
    };
    const alert = (name: string, evalTime: string, series: { series: string; values: string }[], fires: string | undefined, severity = 'warning', labels: Record<string, string> = {}) => ({
      interval: '1m',
      input_series: series,
      alert_rule_test: [{ eval_time: evalTime, alertname: name, exp_alerts: fires === undefined ? [] : [{ exp_labels: { severity, ...labels }, exp_annotations: annotations(name, fires) }] }],
    });
    const tests = [
      alert('SidecarInjectorAdmissionErrors', '20m', [{ series: `sidecar_injector_admissions_total{decision="error",${ns},pod="a"}`, values: '0+60x30' }],
        '1 admissions per second answered with an error in namespace sidecar-injector for 10 minutes.'),
      alert('SidecarInjectorAdmissionErrors', '20m', [{ series: `sidecar_injector_admissions_total{decision="error",${ns},pod="a"}`, values: '0x30' }], undefined),
      alert('SidecarInjectorMissedPods', '20m', [{ series: `sidecar_injector_pods{state="missed",${ns},pod="a"}`, values: '3x30' }],
        '3 pods missed injection; run `sidecar-injector audit -A` to see them, `--restart` to fix them.'),
      alert('SidecarInjectorMissedPods', '20m', [{ series: `sidecar_injector_pods{state="missed",${ns},pod="a"}`, values: '0x30' }, { series: `sidecar_injector_pods{state="stale",${ns},pod="a"}`, values: '5x30' }], undefined),
      // Expires 10 days after the start: within 14 days. At 20m, 9d 23h 40m are left.
      alert('SidecarInjectorCertificateExpiringSoon', '20m', [{ series: `sidecar_injector_certificate_expiry_timestamp_seconds{${ns},pod="a"}`, values: '864000x30' }],
        'It expires in 9d 23h 40m 0s; with failurePolicy Fail an expired certificate stops pod creation. Renew it (docs/install.md, Rotation).', 'critical'),
      alert('SidecarInjectorCertificateExpiringSoon', '20m', [{ series: `sidecar_injector_certificate_expiry_timestamp_seconds{${ns},pod="a"}`, values: '2592000x30' }], undefined),
      alert('SidecarInjectorConfigReloadFailing', '10m', [{ series: `sidecar_injector_config_reloads_total{result="failure",${ns},pod="a"}`, values: '0 0 0 0 0 1 1 1 1 1 1 1' }],
        'Look for "config reload rejected" in the injector logs, or run `sidecar-injector validate-config` on the ConfigMap.'),
      alert('SidecarInjectorConfigReloadFailing', '10m', [{ series: `sidecar_injector_config_reloads_total{result="failure",${ns},pod="a"}`, values: '2x12' }, { series: `sidecar_injector_config_reloads_total{result="success",${ns},pod="a"}`, values: '0+1x12' }], undefined),
      alert('SidecarInjectorNamespaceCacheNotSynced', '20m', [{ series: `sidecar_injector_namespace_cache_synced{${ns},pod="a"}`, values: '1x30' }, { series: `sidecar_injector_namespace_cache_synced{${ns},pod="b"}`, values: '0x30' }],
        'Rule 7 (namespace opt-in) runs on direct reads; check the replica can list and watch namespaces.'),
      alert('SidecarInjectorNamespaceCacheNotSynced', '20m', [{ series: `sidecar_injector_namespace_cache_synced{${ns},pod="a"}`, values: '0 0 1x30' }], undefined),
      // Another namespace's injector is not ours to page for.
      alert('SidecarInjectorMissedPods', '20m', [{ series: 'sidecar_injector_pods{state="missed",namespace="elsewhere",pod="a"}', values: '3x30' }], undefined),
      alert('SidecarInjectorCaNotTrusted', '20m', [{ series: `sidecar_injector_ca_trusted{${ns},pod="a"}`, values: '1x30' }, { series: `sidecar_injector_ca_trusted{${ns},pod="b"}`, values: '0x30' }],
        'Replica b has served with a CA that is not in the webhook configuration\'s caBundle for 5 minutes: calls the API server sends it fail. Look for "caBundle not written" or "replica Leases unavailable" in its logs (docs/operations.md, Alerts).', 'critical', { pod: 'b' }),
      // A replica untrusted for a moment (a rotation's write, then the API server's reload) does not page.
      alert('SidecarInjectorCaNotTrusted', '20m', [{ series: `sidecar_injector_ca_trusted{${ns},pod="a"}`, values: '1x15 0 0 1x15' }], undefined),
    ];
    const r = promtool(['test', 'rules', 'tests.yaml'], { 'rules.yaml': RULES, 'tests.yaml': stringify({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }) });
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });
});

describe('Grafana dashboard', () => {
  const cm = one('ConfigMap');
  const dashboard = JSON.parse((cm.data as Record<string, string>)['sidecar-injector.json']!) as { uid: string; panels: { title: string; targets: { expr: string }[] }[] };

  it('is a ConfigMap labelled for the Grafana sidecar, in a folder', () => {
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'Platform' });
    expect(dashboard.uid).toBe('sidecar-injector');
    expect(dashboard.panels.map((p) => p.title)).toEqual(
      expect.arrayContaining(['Admissions by decision', 'Admission latency', 'Config and certificate reloads', 'Events dropped', 'Pods by audit state', 'Days to certificate expiry', 'caBundle trusts every replica', 'CAs in the caBundle']),
    );
  });

  it('every query parses as PromQL and names only exported metrics', async () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    // Grafana's variables, as Grafana substitutes them.
    const rules = exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', 'sidecar-injector') }));
    const r = promtool(['check', 'rules', 'dashboard.yaml'], { 'dashboard.yaml': stringify({ groups: [{ name: 'dashboard', rules }] }) });
    expect(r.out).toContain(`SUCCESS: ${exprs.length} rules found`);
    const names = await exported();
    for (const e of exprs) {
      expect(namesIn(e).length).toBeGreaterThan(0);
      for (const n of namesIn(e)) expect(names).toContain(n);
    }
  });
});

describe('ServiceMonitor', () => {
  it('selects the Service and scrapes its metrics port', () => {
    const sm = one('ServiceMonitor') as Doc & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } };
    const svc = docs.find((d) => d.kind === 'Service')! as Doc & { spec: { ports: { name: string }[] } };
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(svc.spec.ports.map((p) => p.name)).toContain(sm.spec.endpoints[0]!.port);
    expect(sm.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
  });

  it('none of the three is rendered by default', () => {
    const defaults = parseAllDocuments(render([]).stdout).map((d) => (d.toJS() as Doc).kind);
    expect(defaults).not.toContain('ServiceMonitor');
    expect(defaults).not.toContain('PrometheusRule');
  });
});
