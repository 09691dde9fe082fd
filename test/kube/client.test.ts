import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectCluster, KubeError } from '../../src/kube/client.js';
import { FakeApiServer } from '../fake-apiserver/server.js';

let fake: FakeApiServer | undefined;
afterEach(async () => {
  jest.useRealTimers();
  await fake?.stop();
  fake = undefined;
});

describe('cluster access through client-node', () => {
  it('no kubeconfig and not in a pod: no cluster', async () => {
    expect(await connectCluster({ env: {} })).toBeUndefined();
    // KUBERNETES_SERVICE_HOST alone is not enough: there must be a service-account token too.
    expect(await connectCluster({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' } })).toBeUndefined();
  });

  it('answers errors as KubeError with the Status reason, and a wrong token as 401', async () => {
    fake = new FakeApiServer();
    await fake.start();
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    const client = (await connectCluster({ kubeconfig: fake.kubeconfig(dir), env: {} }))!;
    const err = await client.request('GET', '/api/v1/namespaces/none').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect((err as KubeError).status).toBe(404);
    expect((err as KubeError).message).toContain('NotFound');
    const stranger = (await connectCluster({ kubeconfig: fake.kubeconfig(dir, 'wrong', 'other'), env: {} }))!;
    expect(((await stranger.request('GET', '/version').catch((e: unknown) => e)) as KubeError).status).toBe(401);
  });

  it('a service-account token rotated on disk keeps working (client-node re-reads the token file)', async () => {
    fake = new FakeApiServer({ tokens: ['token-1'] });
    await fake.start();
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'token-1');
    // What loadFromCluster() sets up in a pod: the tokenFile auth provider.
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: { server: '${fake.url}', certificate-authority-data: ${Buffer.from(fake.ca).toString('base64')} }
users:
- name: sa
  user: { auth-provider: { name: tokenFile, config: { tokenFile: '${tokenFile}' } } }
contexts:
- name: c
  context: { cluster: c, user: sa }
current-context: c
`,
    );
    const client = (await connectCluster({ kubeconfig, env: {} }))!;
    expect((await client.request('GET', '/version')).status).toBe(200);

    // kubelet rotates the projected token; the API server stops accepting the old one.
    writeFileSync(tokenFile, 'token-2');
    fake.opts.tokens = ['token-2'];
    // Within a minute of the last read the old token is still sent (kubelet rotates well before expiry, so the API accepts both then).
    expect(((await client.request('GET', '/version').catch((e: unknown) => e)) as KubeError).status).toBe(401);
    // client-node re-reads the file when its copy is over 60 s old (as client-go does): move the clock, not the test.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'hrtime', 'performance'] });
    jest.setSystemTime(Date.now() + 61_000);
    expect((await client.request('GET', '/version')).status).toBe(200);
  });
});
