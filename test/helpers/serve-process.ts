/**
 * `serve` as a real process, laid out as in a pod: the config and the TLS
 * pair in kubelet-style volumes (symlink swaps on update), the webhook on a
 * free port, metrics on another. Shared by the operations and cluster tests.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_CONFIG_YAML } from './configs.js';
import { freePort, MountedVolume } from './ops.js';
import { startCli, type Started } from './process.js';

export interface ServeProcess {
  proc: Started;
  port: number;
  metricsPort: number;
  /** Holds config.yaml. */
  config: MountedVolume;
  /** Holds the files given as `tls` (tls.crt, tls.key, and ca.crt where the test wants it). */
  tls: MountedVolume;
}

export interface ServeOptions {
  tls: Record<string, string | Buffer>;
  config?: string;
  args?: string[];
  /** Writes a kubeconfig into the process's directory and returns its path. */
  kubeconfig?: (dir: string) => string;
  env?: Record<string, string>;
}

const running: Started[] = [];

/** For afterEach: kills what is still running and waits for it. */
export async function stopServeProcesses(): Promise<void> {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
}

/** Resolves once the process logs that it serves. */
export async function startServe(opts: ServeOptions): Promise<ServeProcess> {
  const root = mkdtempSync(join(tmpdir(), 'serve-'));
  const config = new MountedVolume(join(root, 'config'));
  config.update({ 'config.yaml': opts.config ?? TEST_CONFIG_YAML });
  const tls = new MountedVolume(join(root, 'tls'));
  tls.update(opts.tls);
  const metricsPort = await freePort();
  const proc = startCli(
    [
      'serve',
      '--config', config.path('config.yaml'),
      '--tls-cert', tls.path('tls.crt'),
      '--tls-key', tls.path('tls.key'),
      '--port', '0',
      '--metrics-port', String(metricsPort),
      '--host', '127.0.0.1',
      '--shutdown-delay', '0',
      ...(opts.kubeconfig ? ['--kubeconfig', opts.kubeconfig(root)] : []),
      ...(opts.args ?? []),
    ],
    opts.env,
  );
  running.push(proc);
  const line = await proc.waitForLog((l) => l.msg === 'serving /mutate over HTTPS');
  return { proc, port: Number(line.port), metricsPort, config, tls };
}
