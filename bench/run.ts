/**
 * `npm run bench`: the real webhook (`serve`, real TLS, the example config),
 * without and with a cluster, against the express floor, interleaved on one
 * CPU and driven from the other; then the in-process cost of one admission.
 * Prints tables and the targets (docs/performance.md).
 * `npm run bench -- --apiserver`: only the cost of pod creation at a real
 * kube-apiserver (apiserver.ts).
 *
 * Where things are: payloads.ts (the reviews), floor.ts (the floor),
 * servers.ts (starting and pinning the servers), cluster.ts (the API server
 * the cluster webhook talks to), verify.ts (answers checked first),
 * saturation.ts and open-loop.ts (the load), rounds.ts (one payload's
 * rounds), in-process.ts (no HTTP), report.ts (tables, targets).
 *
 * Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_OPEN_SECONDS (10),
 * BENCH_CONNECTIONS (16), BENCH_RATE (500), BENCH_PAYLOADS (small,large,huge; empty: in-process only),
 * BENCH_CLUSTER_ARGS (extra flags for the server with a cluster, e.g. --no-events),
 * BENCH_BASELINE (the root of another checkout, built: its webhook is measured too, as "baseline").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../src/tls/generate.js';
import { apiServerCost } from './apiserver.js';
import { startBenchCluster } from './cluster.js';
import { growth, perPayload } from './in-process.js';
import { bodyTemplate, type PayloadName } from './payloads.js';
import { GROWTH_HEAD, hugeVerdict, IN_PROCESS_HEAD, OPEN_HEAD, reportPayload, SATURATION_HEAD, table } from './report.js';
import { measurePayload, type Settings } from './rounds.js';
import { pinLoadGenerator } from './servers.js';

const log = (s: string) => process.stdout.write(`${s}\n`);

function settings(env: NodeJS.ProcessEnv): Settings & { payloads: PayloadName[] } {
  return {
    rounds: Number(env.BENCH_ROUNDS ?? 3),
    seconds: Number(env.BENCH_SECONDS ?? 5),
    connections: Number(env.BENCH_CONNECTIONS ?? 16),
    // p99 of an open loop needs thousands of samples to be more than a couple of hiccups.
    openSeconds: Number(env.BENCH_OPEN_SECONDS ?? 10),
    rate: Number(env.BENCH_RATE ?? 500),
    clusterArgs: (env.BENCH_CLUSTER_ARGS ?? '').split(' ').filter(Boolean),
    baseline: env.BENCH_BASELINE || undefined,
    payloads: (env.BENCH_PAYLOADS ?? 'small,large,huge').split(',').filter(Boolean) as PayloadName[],
  };
}

async function againstTheFloor(s: ReturnType<typeof settings>): Promise<string[]> {
  const certDir = mkdtempSync(join(tmpdir(), 'bench-certs-'));
  const certs = await generateCertificates({ service: 'bench', namespace: 'bench', dev: true, days: 1 });
  await writeCertificates(certDir, certs);
  const cluster = await startBenchCluster(certDir, { caCert: certs.caCert, cert: certs.cert, key: certs.key });
  const saturation: string[][] = [];
  const open: string[][] = [];
  const verdicts: string[] = [];
  try {
    for (const payload of s.payloads) {
      log(`\n== ${payload} (${(bodyTemplate(payload).size / 1024).toFixed(1)} KB per review)`);
      const rounds = await measurePayload(payload, s, { certDir, ca: certs.caCert, kubeconfig: cluster.kubeconfig, log });
      const report = reportPayload(payload, rounds, s.rate);
      saturation.push(...report.saturation);
      open.push(...report.open);
      verdicts.push(...report.verdicts);
    }
  } finally {
    await cluster.stop();
    rmSync(certDir, { recursive: true, force: true });
  }
  if (saturation.length) {
    log('\nSaturation (autocannon; medians of the rounds; ratios pair each round with its floor; CPU = the server\'s user + system time');
    log('per request while saturated, steadier than req/s on a shared machine; peak RSS = VmHWM of the server process in its round):');
    log(table(SATURATION_HEAD, saturation));
  }
  if (open.length) {
    log(`\nOpen loop at ${s.rate} req/s for ${s.openSeconds}s (latency from the scheduled send time; medians of the rounds):`);
    log(table(OPEN_HEAD, open));
  }
  log(`\nthe bench's API server answered ${cluster.counts.requests} requests from the cluster webhooks (${cluster.counts.eventWrites} event writes)`);
  return verdicts;
}

async function main(): Promise<void> {
  if (process.argv.includes('--apiserver')) {
    process.exitCode = apiServerCost(log);
    return;
  }
  const s = settings(process.env);
  log(`sidecar-injector benchmark: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
  log(pinLoadGenerator());
  log(`${s.rounds} interleaved rounds x ${s.seconds}s, ${s.connections} keep-alive TLS connections; open loop at ${s.rate} req/s for ${s.openSeconds}s`);

  const verdicts = s.payloads.length ? await againstTheFloor(s) : [];

  log('\nOne admission in-process (medians; "core" = decide + inject + diff + response, on a parsed review):');
  const rows = perPayload();
  log(table(IN_PROCESS_HEAD, rows));
  log('\nGrowth of the core cost (decide + inject + diff + response) with pod size:');
  log(table(GROWTH_HEAD, growth()));
  const huge = hugeVerdict(rows);
  if (huge) verdicts.push(huge);
  log('\nPod creation at a real kube-apiserver: npm run bench -- --apiserver');
  log('\nTargets:');
  for (const v of verdicts) log(`  ${v}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
