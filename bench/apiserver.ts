/**
 * `npm run bench -- --apiserver`: what pod creation costs at a real
 * kube-apiserver. Runs the end-to-end cost suite (test/e2e/cost.e2e.ts)
 * through scripts/e2e.mjs, so on the control plane `npm run e2e` provisions
 * (the pinned binaries, built the first time; KUBE_APISERVER and ETCD name
 * others), and prints its rows with what each adds over a plain pod.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from './report.js';
import { ROOT } from './servers.js';

interface CostRow {
  case: string;
  n: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  perSecond?: number;
}

export interface CostResult {
  date: string;
  server: string;
  rows: CostRow[];
}

/** The suite's rows as a table, each p50 also as what it adds over a plain pod's creation. */
export function costTable(result: CostResult): string {
  const plain = result.rows.find((row) => row.case.startsWith('no injector'));
  const added = (row: CostRow) => {
    if (!plain || row === plain) return '';
    const d = row.p50 - plain.p50;
    return `${d >= 0 ? '+' : ''}${d.toFixed(2)}`;
  };
  return [
    `Pod creation at kube-apiserver ${result.server}, ${result.date} (ms; "added" = p50 over "${plain?.case ?? '?'}"):`,
    table(
      ['case', 'n', 'p50', 'added', 'p90', 'p99', 'errors', 'pods/s'],
      result.rows.map((row) => [
        row.case,
        String(row.n),
        row.p50.toFixed(2),
        added(row),
        row.p90.toFixed(2),
        row.p99.toFixed(2),
        String(row.errors),
        row.perSecond === undefined ? '' : row.perSecond.toFixed(0),
      ]),
    ),
  ].join('\n');
}

/** Runs the suite, which writes its rows to $E2E_COST_OUT, and prints them; returns the exit status to leave with. */
export function apiServerCost(log: (line: string) => void): number {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cost-'));
  const out = join(dir, 'cost.json');
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/e2e.mjs'), 'test/e2e/cost.e2e.ts'], { stdio: 'inherit', cwd: ROOT, env: { ...process.env, E2E_COST_OUT: out } });
    let result: CostResult;
    try {
      result = JSON.parse(readFileSync(out, 'utf8')) as CostResult;
    } catch {
      log(`the cost suite wrote no rows (exit ${r.status ?? r.signal})`);
      return r.status || 1;
    }
    log(`\n${costTable(result)}`);
    return r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
