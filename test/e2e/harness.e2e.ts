/**
 * The control-plane harness itself (test/e2e/apiserver.ts): it stops exactly
 * what it started, also when its setup fails, and keeps the logs. Witness:
 * the processes whose command line names the control plane's directory
 * (/proc), not the harness's own bookkeeping.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiServer } from './apiserver.js';
import { processesNaming } from './processes.js';


describe('the control-plane harness', () => {
  it('a kube-apiserver that cannot start: the error names the flag and the directory, etcd is stopped, the logs stay', async () => {
    const saved = process.env.KUBE_APISERVER_ARGS;
    process.env.KUBE_APISERVER_ARGS = '--no-such-flag=1';
    const err = await ApiServer.start().then(
      (kas) => kas.stop().then(() => new Error('started with an unknown flag')),
      (e: Error) => e,
    );
    if (saved === undefined) delete process.env.KUBE_APISERVER_ARGS;
    else process.env.KUBE_APISERVER_ARGS = saved;
    expect(err.message).toContain('unknown flag: --no-such-flag');
    const dir = /control plane in (\S+) \(its logs stay there\)/.exec(err.message)?.[1];
    expect(dir).toBeDefined();
    expect(processesNaming(dir!)).toEqual([]);
    expect(readFileSync(join(dir!, 'kube-apiserver.log'), 'utf8')).toContain('no-such-flag');
    expect(existsSync(join(dir!, 'etcd.log'))).toBe(true);
  }, 120_000);

  it('stop() ends exactly its own etcd and kube-apiserver; another control plane keeps serving', async () => {
    const a = await ApiServer.start();
    const b = await ApiServer.start();
    try {
      expect(processesNaming(a.dir)).toHaveLength(2);
      await a.stop();
      expect(processesNaming(a.dir)).toEqual([]);
      expect(processesNaming(b.dir)).toHaveLength(2);
      expect((await b.call('GET', '/readyz')).status).toBe(200);
      expect(b.version).toMatch(/^v1\.\d+\.\d+$/);
      expect(existsSync(join(a.dir, 'kube-apiserver.log'))).toBe(true);
    } finally {
      await a.stop();
      await b.stop();
    }
    expect(processesNaming(b.dir)).toEqual([]);
  }, 180_000);
});
