/**
 * The SidecarProfile policy's writer (issue 30): what it writes and when,
 * against an API server held in memory that answers as kube-apiserver does for
 * these calls (server-side apply creating or replacing a whole object of one
 * field manager, 404 for a missing object or a resource it does not serve,
 * 422 for a policy it refuses, /version). test/fake-apiserver/server.ts serves
 * neither admissionregistration policies nor apply patches (reported in issue
 * 30's notes); this stand-in keeps to the same REST shapes.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubeClient, KubeResponse, RequestOpts, WatchHandle } from '../../src/kube/client.js';
import { KubeError } from '../../src/kube/client.js';
import { compileProfilePolicy } from '../../src/core/profile-policy.js';
import type { CompiledConfig } from '../../src/core/config.js';
import { fingerprinted, ProfilePolicyWriter, type ProfilePolicyWriteResult } from '../../src/kube/profile-policy-writer.js';
import { compile } from '../helpers/configs.js';
import { quietLogger } from './helpers.js';

type Obj = Record<string, unknown>;
const BASE = '/apis/admissionregistration.k8s.io/v1/';
const POLICY = `${BASE}validatingadmissionpolicies/si-sidecarprofiles`;
const BINDING = `${BASE}validatingadmissionpolicybindings/si-sidecarprofiles`;

interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType?: string;
}

/** kube-apiserver for the writer's calls, in memory. */
class MemoryApiServer implements KubeClient {
  server = 'memory';
  source = 'test';
  readonly objects = new Map<string, Obj>();
  readonly calls: Call[] = [];
  version: Obj = { major: '1', minor: '31', gitVersion: 'v1.31.2' };
  /** false: admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies are not served (404, as before 1.30). */
  servesPolicies = true;
  /** The next requests of a method answer this status (one entry per request). */
  readonly failures: { method: string; status: number }[] = [];
  /** A policy the API server refuses (422), with why. */
  refuse: ((o: Obj) => string | undefined) | undefined;
  private rv = 1;

  async request(method: string, path: string, opts: RequestOpts = {}): Promise<KubeResponse> {
    const [p = '', q = ''] = path.split('?');
    this.calls.push({ method, path: p, query: new URLSearchParams(q), contentType: opts.contentType });
    const failure = this.failures.findIndex((f) => f.method === method);
    if (failure >= 0) {
      const { status } = this.failures.splice(failure, 1)[0]!;
      throw new KubeError(status, status >= 500 ? 'InternalError' : 'BadRequest', 'injected failure');
    }
    if (p === '/version' && method === 'GET') return { status: 200, body: this.version };
    if (!p.startsWith(BASE) || !this.servesPolicies) throw new KubeError(404, 'NotFound', 'the server could not find the requested resource');
    const found = this.objects.get(p);
    const name = decodeURIComponent(p.split('/').pop()!);
    if (method === 'GET') {
      if (!found) throw new KubeError(404, 'NotFound', `"${name}" not found`);
      return { status: 200, body: found };
    }
    if (method === 'DELETE') {
      if (!found) throw new KubeError(404, 'NotFound', `"${name}" not found`);
      this.objects.delete(p);
      return { status: 200, body: { kind: 'Status', status: 'Success' } };
    }
    if (method === 'PATCH') {
      // Server-side apply ("API Concepts" > "Server-Side Apply"): the applied configuration of our one manager is the object.
      if (opts.contentType !== 'application/apply-patch+yaml') throw new KubeError(415, 'UnsupportedMediaType', 'unsupported patch type');
      const body = opts.body as Obj & { metadata: Obj };
      if (body.metadata.name !== name) throw new KubeError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
      const why = this.refuse?.(body);
      if (why) throw new KubeError(422, 'Invalid', `ValidatingAdmissionPolicy.admissionregistration.k8s.io "${name}" is invalid: ${why}`);
      this.rv += 1;
      const stored = { ...body, metadata: { ...body.metadata, uid: (found?.metadata as Obj | undefined)?.uid ?? `uid-${this.rv}`, resourceVersion: String(this.rv) } };
      this.objects.set(p, stored);
      return { status: found ? 200 : 201, body: stored };
    }
    throw new KubeError(405, 'MethodNotAllowed', `${method} is not supported here`);
  }

  watch(): Promise<WatchHandle> {
    throw new Error('the writer does not watch');
  }

  writes(): Call[] {
    return this.calls.filter((c) => c.method !== 'GET');
  }
}

const config = (tenantProfiles: string) =>
  compile(`
profiles:
  agent:
    containers: [{ name: agent, image: registry.example.com/agent:1 }]
tenantProfiles: ${tenantProfiles}
`);
const ENABLED = config('{ enabled: true, allowedRegistries: [registry.example.com/team/], maxResources: { cpu: 500m, memory: 256Mi } }');

const writers: ProfilePolicyWriter[] = [];
afterEach(() => {
  for (const w of writers.splice(0)) w.stop();
});

function writer(api: MemoryApiServer, opts: { kubeVersion?: { major: number; minor: number }; checkEveryMs?: number } = {}) {
  const results: ProfilePolicyWriteResult[] = [];
  const w = new ProfilePolicyWriter({ client: api, name: 'si', logger: quietLogger, onResult: (r) => results.push(r), backoffInitialMs: 20, ...opts });
  writers.push(w);
  return { w, results };
}

async function settled(w: ProfilePolicyWriter): Promise<void> {
  expect(await w.settled(10_000)).toBe(true);
}

function expected(compiled: CompiledConfig): Obj[] {
  const r = compileProfilePolicy(compiled.config.tenantProfiles, 'si', { major: 1, minor: 31 });
  if (!r.ok) throw new Error(r.problems.join());
  return fingerprinted(r.objects).objects as unknown as Obj[];
}
/** The object as applied, without what the API server adds. */
const stored = (o: Obj | undefined) => {
  if (!o) return o;
  const metadata = { ...(o.metadata as Obj) };
  delete metadata.uid;
  delete metadata.resourceVersion;
  return { ...o, metadata };
};

describe('ProfilePolicyWriter', () => {
  it('writes the policy, then its binding, by server-side apply with our field manager, each with the fingerprint of what was compiled', async () => {
    const api = new MemoryApiServer();
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    expect(results).toEqual(['applied']);
    expect(api.writes().map((c) => [c.method, c.path, c.contentType, c.query.get('fieldManager'), c.query.get('force')])).toEqual([
      ['PATCH', POLICY, 'application/apply-patch+yaml', 'sidecar-injector', 'true'],
      ['PATCH', BINDING, 'application/apply-patch+yaml', 'sidecar-injector', 'true'],
    ]);
    const [policy, binding] = expected(ENABLED);
    expect(stored(api.objects.get(POLICY))).toEqual(policy);
    expect(stored(api.objects.get(BINDING))).toEqual(binding);
    expect((policy!.metadata as { annotations: Record<string, string> }).annotations['sidecar-injector.io/compiled']).toMatch(/^[0-9a-f]{16}$/);
  });

  it('writes nothing when what is in force was compiled from the same limits: another replica, a reload that changes something else', async () => {
    const api = new MemoryApiServer();
    const first = writer(api);
    first.w.start(ENABLED);
    await settled(first.w);
    const second = writer(api);
    second.w.start(ENABLED);
    await settled(second.w);
    const otherProfiles = compile(`
profiles:
  agent:
    containers: [{ name: agent, image: registry.example.com/agent:2 }]
tenantProfiles: { enabled: true, allowedRegistries: [registry.example.com/team/], maxResources: { cpu: 500m, memory: 256Mi } }
`);
    second.w.update(otherProfiles);
    await settled(second.w);
    expect(second.results).toEqual(['unchanged', 'unchanged']);
    expect(api.writes()).toHaveLength(2);
  });

  it('new limits: the policy is written again, compiled from them', async () => {
    const api = new MemoryApiServer();
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    const tighter = config('{ enabled: true, allowedRegistries: [registry.example.com/team/], maxResources: { cpu: 250m } }');
    w.update(tighter);
    await settled(w);
    expect(results).toEqual(['applied', 'applied']);
    expect(stored(api.objects.get(POLICY))).toEqual(expected(tighter)[0]);
    expect(JSON.stringify(api.objects.get(POLICY))).toContain('250m');
  });

  it('tenantProfiles.enabled false: the binding is removed, then the policy; nothing more to do after', async () => {
    const api = new MemoryApiServer();
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    const off = config('{ enabled: false, allowedRegistries: [registry.example.com/team/] }');
    w.update(off);
    await settled(w);
    w.update(off);
    await settled(w);
    expect(results).toEqual(['applied', 'removed', 'unchanged']);
    expect(api.writes().slice(2).map((c) => [c.method, c.path])).toEqual([
      ['DELETE', BINDING],
      ['DELETE', POLICY],
      ['DELETE', BINDING],
      ['DELETE', POLICY],
    ]);
    expect(api.objects.size).toBe(0);
  });

  it('a server before 1.30 (given, or by /version) gets nothing, and is told once', async () => {
    const given = new MemoryApiServer();
    const a = writer(given, { kubeVersion: { major: 1, minor: 29 } });
    a.w.start(ENABLED);
    await settled(a.w);
    a.w.update(ENABLED);
    await settled(a.w);
    expect(a.results).toEqual(['unsupported', 'unsupported']);
    expect(given.calls).toEqual([]);

    const asked = new MemoryApiServer();
    asked.version = { major: '1', minor: '29+', gitVersion: 'v1.29.3-eks-abc' };
    const b = writer(asked);
    b.w.start(ENABLED);
    await settled(b.w);
    expect(b.results).toEqual(['unsupported']);
    expect(asked.calls.map((c) => c.path)).toEqual(['/version']);
  });

  it('a server whose version is unknown and that does not serve the resource (404) counts as such a server', async () => {
    const api = new MemoryApiServer();
    api.version = {};
    api.servesPolicies = false;
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    expect(results).toEqual(['unsupported']);
    expect(api.objects.size).toBe(0);
  });

  it('a policy the API server refuses (422) is rejected and the binding is not written; limits it cannot compile leave the policy in force', async () => {
    const api = new MemoryApiServer();
    api.refuse = () => 'spec.variables[3].expression: Invalid value: compilation failed';
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    expect(results).toEqual(['rejected']);
    expect(api.writes().map((c) => c.path)).toEqual([POLICY]);

    api.refuse = undefined;
    w.update(ENABLED);
    await settled(w);
    w.update(config('{ enabled: true, maxResources: { cpu: 1e40 } }'));
    await settled(w);
    expect(results).toEqual(['rejected', 'applied', 'rejected']);
    expect(stored(api.objects.get(POLICY))).toEqual(expected(ENABLED)[0]);
  });

  it('a failed write is retried with backoff until it is in force', async () => {
    const api = new MemoryApiServer();
    api.failures.push({ method: 'PATCH', status: 500 }, { method: 'GET', status: 503 });
    const { w, results } = writer(api);
    w.start(ENABLED);
    await settled(w);
    expect(results).toEqual(['failure', 'failure', 'applied']);
    expect(stored(api.objects.get(BINDING))).toEqual(expected(ENABLED)[1]);
  });

  it('a policy deleted by hand comes back at the next check', async () => {
    const api = new MemoryApiServer();
    const { w, results } = writer(api, { checkEveryMs: 50 });
    w.start(ENABLED);
    await settled(w);
    api.objects.delete(BINDING);
    const deadline = Date.now() + 5000;
    while (!api.objects.has(BINDING) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(stored(api.objects.get(BINDING))).toEqual(expected(ENABLED)[1]);
    expect(results.filter((r) => r !== 'unchanged')).toEqual(['applied', 'applied']);
  });
});
