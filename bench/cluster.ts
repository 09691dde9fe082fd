/**
 * The API server the "cluster" webhook talks to: only what `serve` asks of
 * one on its way (Kubernetes "API Concepts": a paginated namespace list,
 * then a watch from its resourceVersion with bookmarks; /version; Events
 * created with POST and aggregated with PATCH). It holds a few hundred
 * namespaces so the label cache has something to hold, and runs in the
 * bench's process, on the load generator's CPU. Not a model of the real
 * server's rules: the tests' fake (test/fake-apiserver) is that.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface BenchCluster {
  kubeconfig: string;
  /** Requests answered, by kind: what the cluster webhooks asked during the run. */
  counts: { requests: number; eventWrites: number };
  stop(): Promise<void>;
}

interface Namespace {
  apiVersion: 'v1';
  kind: 'Namespace';
  metadata: { name: string; uid: string; resourceVersion: string; labels: Record<string, string> };
}

const RESOURCE_VERSION = '1000';

function namespaces(): Namespace[] {
  const list: Namespace[] = [];
  const add = (name: string, labels: Record<string, string>) =>
    list.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, uid: randomBytes(8).toString('hex'), resourceVersion: RESOURCE_VERSION, labels } });
  for (let i = 0; i < 300; i++) add(`team-${i}`, i % 2 ? { 'sidecar-injector.io/injection': 'enabled' } : {});
  add('shop', {});
  return list;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function notFound(res: ServerResponse, what: string): void {
  json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${what} not found` });
}

/** One page of the namespace list (`limit`, `continue` as an offset). */
function listPage(all: Namespace[], query: URLSearchParams): unknown {
  const limit = Number(query.get('limit') ?? all.length) || all.length;
  const from = Number(query.get('continue') ?? 0);
  const next = from + limit < all.length ? String(from + limit) : undefined;
  return { apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: RESOURCE_VERSION, ...(next ? { continue: next } : {}) }, items: all.slice(from, from + limit) };
}

/** A watch stream that stays open with one bookmark: nothing changes during a bench. */
function watchStream(req: IncomingMessage, res: ServerResponse, open: Set<ServerResponse>): void {
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Namespace', apiVersion: 'v1', metadata: { resourceVersion: RESOURCE_VERSION } } })}\n`);
  open.add(res);
  req.on('close', () => open.delete(res));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/** Starts it over TLS with the bench's serving pair (valid for 127.0.0.1) and writes a kubeconfig into `dir`. */
export async function startBenchCluster(dir: string, tls: { caCert: string; cert: string; key: string }): Promise<BenchCluster> {
  const all = namespaces();
  const byName = new Map(all.map((n) => [n.metadata.name, n]));
  const token = randomBytes(16).toString('hex');
  const counts = { requests: 0, eventWrites: 0 };
  const watches = new Set<ServerResponse>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    counts.requests += 1;
    if (req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
    const url = new URL(req.url ?? '/', 'https://bench');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/version') return json(res, 200, { major: '1', minor: '36', gitVersion: 'v1.36.3' });
    if (req.method === 'GET' && path === '/api/v1/namespaces') {
      if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return watchStream(req, res, watches);
      return json(res, 200, listPage(all, url.searchParams));
    }
    const ns = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && ns) {
      const found = byName.get(decodeURIComponent(ns[1]!));
      return found ? json(res, 200, found) : notFound(res, `namespaces "${ns[1]}"`);
    }
    if (/^\/api\/v1\/namespaces\/[^/]+\/events(\/[^/]+)?$/.test(path) && (req.method === 'POST' || req.method === 'PATCH')) {
      counts.eventWrites += 1;
      const body = await readBody(req);
      return json(res, req.method === 'POST' ? 201 : 200, req.method === 'POST' ? JSON.parse(body) : { kind: 'Event', apiVersion: 'v1' });
    }
    notFound(res, `${req.method} ${path}`);
  };

  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch((err: unknown) => json(res, 500, { kind: 'Status', code: 500, message: String(err) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters:\n- name: bench\n  cluster:\n    server: https://127.0.0.1:${port}\n    certificate-authority-data: ${Buffer.from(tls.caCert).toString('base64')}`,
      `users:\n- name: bench\n  user:\n    token: ${token}`,
      'contexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench',
      'current-context: bench',
      '',
    ].join('\n'),
  );
  return {
    kubeconfig,
    counts,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const w of watches) w.end();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
