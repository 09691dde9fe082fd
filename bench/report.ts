/** Tables and verdicts: medians of the rounds, each figure against its target (docs/performance.md). */
import type { PayloadName } from './payloads.js';
import type { Rounds, Sample } from './rounds.js';
import { SERVER_NAMES, type ServerName } from './servers.js';
import { median } from './stats.js';

/** Issue 31's targets for the webhook against the floor; the server with a cluster also holds a namespace cache. */
export const TARGETS = {
  throughput: { small: 0.95, large: 0.9 } as Partial<Record<PayloadName, number>>,
  peakRss: { webhook: 1.1, cluster: 1.2 },
  openLoopP99: 1.5,
  hugeInProcessMs: 10,
};

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const verdict = (met: boolean) => (met ? 'MET ' : 'MISS');

/** What one payload's rounds add to the tables and the verdicts. */
export interface PayloadReport {
  saturation: string[][];
  open: string[][];
  verdicts: string[];
}

export function reportPayload(payload: PayloadName, rounds: Rounds, rate: number): PayloadReport {
  const samples = (name: ServerName) => rounds[name] ?? [];
  const med = (name: ServerName, pick: (x: Sample) => number | undefined) => median(samples(name).map(pick).filter((v): v is number => v !== undefined));
  // Ratios pair each round's server with that round's floor, so drift between rounds cancels out.
  const ratioOf = (name: ServerName) => median(samples(name).map((w, i) => w.run.rps / samples('floor')[i]!.run.rps));
  const cpuRatioOf = (name: ServerName) => median(samples(name).map((w, i) => w.cpuUs / samples('floor')[i]!.cpuUs));
  const rss = (name: ServerName) => med(name, (x) => x.rss);
  const out: PayloadReport = { saturation: [], open: [], verdicts: [] };
  for (const name of SERVER_NAMES.filter((n) => rounds[n])) {
    const floor = name === 'floor';
    out.saturation.push([
      payload,
      name,
      med(name, (x) => x.run.rps).toFixed(0),
      med(name, (x) => x.run.p50).toFixed(1),
      med(name, (x) => x.run.p99).toFixed(1),
      rss(name).toFixed(1),
      floor ? '' : ratioOf(name).toFixed(3),
      med(name, (x) => x.cpuUs).toFixed(0),
      floor ? '' : cpuRatioOf(name).toFixed(2),
      floor ? '' : (rss(name) / rss('floor')).toFixed(2),
    ]);
    if (payload !== 'huge') out.open.push([payload, name, med(name, (x) => x.open?.p50).toFixed(2), med(name, (x) => x.open?.p99).toFixed(2)]);
  }
  const want = TARGETS.throughput[payload];
  const ratio = ratioOf('webhook');
  if (want !== undefined) {
    out.verdicts.push(
      `${verdict(ratio >= want)} throughput ${payload}: webhook/floor ${ratio.toFixed(3)} (target >= ${want}; CPU per request x${cpuRatioOf('webhook').toFixed(2)} the floor's)`,
    );
  }
  if (payload !== 'huge') {
    const [w, f] = [med('webhook', (x) => x.open?.p99), med('floor', (x) => x.open?.p99)];
    out.verdicts.push(`${verdict(w / f <= TARGETS.openLoopP99)} p99 at ${rate} req/s ${payload}: ${w.toFixed(2)} ms vs floor ${f.toFixed(2)} ms (x${(w / f).toFixed(2)}, target <= ${TARGETS.openLoopP99})`);
  }
  for (const name of ['webhook', 'cluster'] as const) {
    const r = rss(name) / rss('floor');
    const limit = TARGETS.peakRss[name];
    out.verdicts.push(`${verdict(r <= limit)} peak RSS ${payload} (${name}): ${rss(name).toFixed(1)} MB vs floor ${rss('floor').toFixed(1)} MB (x${r.toFixed(2)}, target <= ${limit})`);
  }
  return out;
}

export const SATURATION_HEAD = ['payload', 'server', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS MB', 'ratio to floor', 'CPU µs/req', 'CPU ratio', 'RSS ratio'];
export const OPEN_HEAD = ['payload', 'server', 'p50 ms', 'p99 ms'];
export const IN_PROCESS_HEAD = ['payload', 'KB', 'core µs', 'core µs/KB', 'with JSON parse+stringify µs', 'ms'];
export const GROWTH_HEAD = ['growing', 'n', 'core µs', 'µs per unit'];

/** The huge pod's in-process verdict, from perPayload's rows. */
export function hugeVerdict(rows: string[][]): string | undefined {
  const huge = rows.find((r) => r[0] === 'huge');
  if (!huge) return undefined;
  return `${verdict(Number(huge[5]) <= TARGETS.hugeInProcessMs)} huge pod in-process: ${huge[5]} ms with JSON, core ${huge[2]} µs (target <= ${TARGETS.hugeInProcessMs} ms)`;
}
