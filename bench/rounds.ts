/**
 * The rounds of one payload: each round starts the servers afresh (so peak
 * RSS is measured per round and has a median), checks their answers, warms
 * them up, then measures each in turn, interleaved: saturation, then
 * latency at a fixed rate (open-loop.ts) on the same process.
 */
import { openLoop, type OpenLoopResult } from './open-loop.js';
import { bodyTemplate, type PayloadName } from './payloads.js';
import { saturate, type Run } from './saturation.js';
import { cpuSeconds, peakRssMb, startServers, stopServers, type ServerName, type ServerOptions } from './servers.js';
import { verify } from './verify.js';

export interface Settings extends ServerOptions {
  rounds: number;
  seconds: number;
  connections: number;
  openSeconds: number;
  rate: number;
}

export interface Sample {
  run: Run;
  /** Absent for the huge payload: neither server parses 500 of them a second on one core. */
  open?: OpenLoopResult;
  /** VmHWM after the round, MB. */
  rss: number;
  /** The server's CPU time per request during saturation, µs. */
  cpuUs: number;
}

/** By server, in round order; the baseline's only with BENCH_BASELINE. */
export type Rounds = Partial<Record<ServerName, Sample[]>>;

export interface Environment {
  certDir: string;
  ca: string;
  kubeconfig: string;
  log: (line: string) => void;
}

export async function measurePayload(payload: PayloadName, s: Settings, env: Environment): Promise<Rounds> {
  const { make } = bodyTemplate(payload);
  const rounds: Rounds = {};
  for (let r = 0; r < s.rounds; r++) {
    const servers = await startServers(env.certDir, env.ca, env.kubeconfig, s);
    try {
      for (const server of servers) await verify(server, env.ca, payload);
      if (r === 0) env.log('   answers verified over TLS with the CA (uid echoed, patch adds the sidecar); checked again each round');
      for (const server of servers) await saturate(server.url, payload, 1, s.connections); // warm-up
      for (const server of servers) {
        const pid = server.proc.pid!;
        const cpuBefore = cpuSeconds(pid);
        const run = await saturate(server.url, payload, s.seconds, s.connections);
        const cpuUs = ((cpuSeconds(pid) - cpuBefore) * 1e6) / run.requests;
        const afterSaturation = peakRssMb(pid);
        const open = payload === 'huge' ? undefined : await openLoop({ url: `${server.url}/mutate`, ca: env.ca, rate: s.rate, seconds: s.openSeconds, warmupSeconds: 1, body: make });
        const rss = peakRssMb(pid);
        (rounds[server.name] ??= []).push({ run, open, rss, cpuUs });
        env.log(
          `   round ${r + 1} ${server.name.padEnd(8)} ${run.rps.toFixed(0).padStart(6)} req/s  p50 ${run.p50} ms  p99 ${run.p99} ms  CPU ${cpuUs.toFixed(0)} µs/req` +
            (open ? `  | at ${s.rate}/s p50 ${open.p50.toFixed(2)} ms p99 ${open.p99.toFixed(2)} ms` : '') +
            `  | peak RSS ${rss.toFixed(1)} MB (${afterSaturation.toFixed(1)} after saturation)${run.errors ? `  ERRORS ${run.errors}` : ''}`,
        );
      }
    } finally {
      stopServers(servers);
    }
  }
  return rounds;
}
