/**
 * The servers under test, each its own process pinned to one CPU (the load
 * generator gets the other): the floor (floor.ts), the real webhook without
 * a cluster, and the same with one (cluster.ts); with BENCH_BASELINE, also
 * the webhook of another build. Started one after another, each ready before
 * the next.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** baseline: the webhook of another build (BENCH_BASELINE), for a before/after in one run. */
export type ServerName = 'floor' | 'baseline' | 'webhook' | 'cluster';
export const SERVER_NAMES: ServerName[] = ['floor', 'baseline', 'webhook', 'cluster'];

export interface Server {
  name: ServerName;
  url: string;
  proc: ChildProcess;
}

export const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0 && cpus().length >= 2;
const SERVER_CPU = '0';
const LOAD_CPU = '1';

/** Moves this process (the load generator, and the bench's API server) to the other CPU. */
export function pinLoadGenerator(): string {
  if (!hasTaskset) return 'taskset unavailable: nothing pinned';
  execFileSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
  return `servers pinned to CPU ${SERVER_CPU}, load generator to CPU ${LOAD_CPU}`;
}

function pinned(cmd: string, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', SERVER_CPU, cmd, ...args]] : [cmd, args];
}

/**
 * CPU time the process has used (user + system), in seconds: /proc/PID/stat's utime and stime, in
 * clock ticks of 1/100 s (USER_HZ on Linux). Counted per admission, it is steadier than req/s on a
 * shared machine: it does not move with the CPU time other processes take.
 */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process's peak resident set (VmHWM), in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitReady(url: string, ca: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}) before it was ready`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`${url}/healthz`, { ca, servername: 'localhost', agent: false }, (res) => {
        res.resume();
        resolve(true); // any answer over TLS: the floor has no /healthz
      });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} not ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for a server's /readyz (with a cluster: the namespace cache has synced). */
async function waitReadyz(url: string): Promise<void> {
  const deadline = Date.now() + 35_000;
  while ((await fetch(url).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error(`${url} not ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Command {
  name: ServerName;
  args: string[];
  url: string;
  /** Waited for after /healthz answers, when set. */
  readyz?: string;
}

/** What to start: the cluster server's extra flags, and another build's root to start as the baseline. */
export interface ServerOptions {
  clusterArgs: string[];
  baseline: string | undefined;
}

async function commands(certDir: string, kubeconfig: string, opts: ServerOptions): Promise<Command[]> {
  const [floorPort, baselinePort, baselineMetrics, webhookPort, metricsPort, clusterPort, clusterMetricsPort] = await Promise.all(Array.from({ length: 7 }, freePort));
  const tls = ['--tls-cert', join(certDir, 'tls.crt'), '--tls-key', join(certDir, 'tls.key')];
  // The real server as a pod runs it: the example config, metrics on, one log line per admission.
  const serve = (port: number, metrics: number, root = ROOT) => [
    join(root, 'dist/cli/main.js'), 'serve', '--config', join(ROOT, 'config/example.yaml'), ...tls,
    '--port', String(port), '--metrics-port', String(metrics), '--host', '127.0.0.1', '--shutdown-delay', '0',
  ];
  const baseline: Command[] = opts.baseline ? [{ name: 'baseline', args: serve(baselinePort!, baselineMetrics!, opts.baseline), url: `https://127.0.0.1:${baselinePort}` }] : [];
  return [
    { name: 'floor', args: [join(ROOT, 'dist-bench/bench/floor.js'), String(floorPort), join(certDir, 'tls.crt'), join(certDir, 'tls.key')], url: `https://127.0.0.1:${floorPort}` },
    ...baseline,
    { name: 'webhook', args: serve(webhookPort!, metricsPort!), url: `https://127.0.0.1:${webhookPort}` },
    // The same with a cluster: namespace cache (list + watch), server probe, events.
    {
      name: 'cluster',
      args: [...serve(clusterPort!, clusterMetricsPort!), '--kubeconfig', kubeconfig, ...opts.clusterArgs],
      url: `https://127.0.0.1:${clusterPort}`,
      readyz: `http://127.0.0.1:${clusterMetricsPort}/readyz`,
    },
  ];
}

/**
 * Starts the three servers, one after another: started together on the one pinned CPU, their start-ups
 * starve each other, and V8 sizes a heap from what it measured then (the server with a cluster, which
 * does the most at start, peaked 15-20 MB higher that way than started alone).
 */
export async function startServers(certDir: string, ca: string, kubeconfig: string, opts: ServerOptions): Promise<Server[]> {
  const servers: Server[] = [];
  try {
    for (const c of await commands(certDir, kubeconfig, opts)) {
      const [cmd, args] = pinned(process.execPath, c.args);
      // The webhooks log one line per admission, as in production; the lines go to /dev/null.
      const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
      servers.push({ name: c.name, url: c.url, proc });
      await waitReady(c.url, ca, proc);
      if (c.readyz) await waitReadyz(c.readyz);
    }
  } catch (err) {
    stopServers(servers);
    throw err;
  }
  return servers;
}

export function stopServers(servers: Server[]): void {
  for (const s of servers) s.proc.kill('SIGKILL');
}
