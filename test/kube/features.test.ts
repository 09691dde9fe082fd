import { afterEach, describe, expect, it } from '@jest/globals';
import { detectServerFeatures } from '../../src/kube/features.js';
import type { FakeApiServer, FakeOptions } from '../fake-apiserver/server.js';
import { startFake } from './helpers.js';

let fake: FakeApiServer | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

async function detect(opts: FakeOptions) {
  const started = await startFake(opts);
  fake = started.fake;
  return { found: await detectServerFeatures(started.client), fake: started.fake };
}

const paths = (f: FakeApiServer) => f.requests.map((r) => r.path);

describe('native sidecar support, asked of the API server', () => {
  it('a plain release version answers by itself: 1.29 and later yes, 1.28 no', async () => {
    const newer = await detect({ version: { gitVersion: 'v1.29.0', major: '1', minor: '29' } });
    expect(newer.found.features.nativeSidecars).toBe(true);
    expect(paths(newer.fake)).toEqual(['/version']);
    await fake?.stop();
    const older = await detect({ version: { gitVersion: 'v1.28.9', major: '1', minor: '28' } });
    expect(older.found.features.nativeSidecars).toBe(false);
    expect(older.found.version).toBe('v1.28.9');
  });

  it('a vendor build is decided by the OpenAPI v3 schema of core/v1 Container', async () => {
    const eks = await detect({ version: { gitVersion: 'v1.30.4-eks-a737599', major: '1', minor: '30+' }, openapi: { v3: true, v2: true, restartPolicy: true } });
    expect(eks.found.features.nativeSidecars).toBe(true);
    expect(eks.found.how).toContain('OpenAPI');
    expect(paths(eks.fake)).toEqual(['/version', '/openapi/v3', '/openapi/v3/api/v1']);
    await fake?.stop();
    const lacking = await detect({ version: { gitVersion: 'v1.27.16+k3s1', major: '1', minor: '27' }, openapi: { v3: true, v2: true, restartPolicy: false } });
    expect(lacking.found.features.nativeSidecars).toBe(false);
  });

  it('falls back to OpenAPI v2 where there is no v3', async () => {
    const { found, fake: f } = await detect({ version: { gitVersion: 'v1.31.0-alpha.2.55+0123abcd', major: '1', minor: '31+' }, openapi: { v3: false, v2: true, restartPolicy: true } });
    expect(found.features.nativeSidecars).toBe(true);
    expect(paths(f)).toEqual(['/version', '/openapi/v3', '/openapi/v2']);
  });

  it('a 1.28 vendor build has the field behind a gate that is off: no', async () => {
    const { found } = await detect({ version: { gitVersion: 'v1.28.5-gke.1217000', major: '1', minor: '28' }, openapi: { v3: true, v2: true, restartPolicy: true } });
    expect(found.features.nativeSidecars).toBe(false);
    expect(found.how).toContain('gates it off');
  });

  it('unknown (no schema readable, or no /version) is unknown: auto means regular, true stays native (SPEC 4)', async () => {
    const none = await detect({ version: { gitVersion: 'v1.30.1-dirty', major: '1', minor: '30' }, openapi: { v3: false, v2: false, restartPolicy: true } });
    expect(none.found.features.nativeSidecars).toBeUndefined();
    expect(none.found.how).toContain('no OpenAPI schema');
    await fake?.stop();
    const started = await startFake();
    fake = started.fake;
    started.fake.failures.push({ pattern: /^GET \/version$/, code: 503 });
    const failed = await detectServerFeatures(started.client);
    expect(failed).toMatchObject({ version: 'unknown', features: { nativeSidecars: undefined } });
  });
});
