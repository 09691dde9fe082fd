/** Shared by the cluster tests: a fake API server, a client-node client for it, a quiet logger, polling. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { connectCluster, type KubeClient } from '../../src/kube/client.js';
import { FakeApiServer, type FakeOptions } from '../fake-apiserver/server.js';

export const quietLogger: Logger = pino({ level: 'silent' });

export async function startFake(opts: FakeOptions = {}): Promise<{ fake: FakeApiServer; client: KubeClient; dir: string }> {
  const fake = new FakeApiServer(opts);
  await fake.start();
  const dir = mkdtempSync(join(tmpdir(), 'fake-kube-'));
  const client = await connectCluster({ kubeconfig: fake.kubeconfig(dir), env: {} });
  if (!client) throw new Error('no client');
  return { fake, client, dir };
}

/** Polls until `check` returns true, or fails with `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
