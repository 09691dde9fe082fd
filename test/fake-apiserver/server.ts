/**
 * A local HTTPS server that plays kube-apiserver for the few calls we make,
 * with the REST shapes the real one uses. Where each shape comes from:
 *
 * - Lists, pagination (`limit`, `continue`, `metadata.resourceVersion`) and
 *   `410 Gone` for an expired continue token: Kubernetes docs, "API
 *   Concepts" > "Retrieving large results sets in chunks".
 * - Watches: `?watch=true&resourceVersion=…`, a chunked stream of one JSON
 *   event per line (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), bookmarks
 *   only with `allowWatchBookmarks=true`, `timeoutSeconds` closing the
 *   stream, and a resourceVersion older than the server keeps answered with
 *   an ERROR event carrying a `Status` of code 410 / reason Expired ("too old
 *   resource version"): "API Concepts" > "Efficient detection of changes",
 *   "Watch bookmarks", "Resource versions"; client-node's watch_test.ts and
 *   cache_test.ts feed the same line format.
 * - Errors are `Status` objects (`kind: Status`, `status: Failure`, `reason`,
 *   `code`): "API Concepts" > "Responses"; 401 without a valid bearer token.
 * - Namespaces carry the `kubernetes.io/metadata.name` label the API server
 *   sets on every namespace (1.21+).
 * - `/version` (version.Info: major, minor, gitVersion…) and OpenAPI at
 *   `/openapi/v2` and `/openapi/v3` (discovery document with
 *   `paths["api/v1"].serverRelativeURL`): "Kubernetes API" > "OpenAPI
 *   interface definition".
 * - PATCH with `application/json-patch+json` (a failed `test` is 422) and
 *   `application/strategic-merge-patch+json` or `merge-patch+json` (maps
 *   merged recursively; a spec change of a Deployment, StatefulSet or
 *   DaemonSet bumps metadata.generation): "API Concepts" > "Patch".
 * - MutatingWebhookConfiguration writes: matchConditions validated as
 *   pkg/apis/admissionregistration/validation/validation.go does
 *   (validateMatchConditions: at most 64, names required, qualified and
 *   unique, expressions required and compiling; 422 Invalid otherwise), and
 *   dropped on write where the feature is off (the registry strategy's
 *   dropDisabledFields for AdmissionWebhookMatchConditions).
 * - Updates (PUT) are optimistic: a `metadata.resourceVersion` other than the
 *   stored one is 409 Conflict ("the object has been modified"), none at all
 *   is an unconditional update (the Lease strategy allows it); the name in
 *   the body must match the path. DELETE answers the Status `Success`
 *   (apiserver's handlers for a deleted object without finalizers). Leases
 *   (coordination.k8s.io/v1) need `spec.leaseDurationSeconds` > 0 when set
 *   (coordination validation.go), and `renewTime` is a MicroTime.
 * - `?dryRun=All` on a create: admitted and validated, answered 201, never
 *   stored (handlers/create.go). Mutating admission runs before validation:
 *   a Lease CREATE is sent to the webhooks of the stored
 *   MutatingWebhookConfigurations whose rules, namespaceSelector and
 *   objectSelector (matchLabels) match; this fake serves no Service, so the
 *   first fails closed as the dispatcher does (500 `failed calling webhook
 *   "NAME"`: webhook/mutating/dispatcher.go, util/webhook/error.go). A real
 *   server's informer lag is zero here (test/kube/ca-trust.test.ts models it).
 * - core/v1 Events: the validation kube-apiserver applies to a legacy Event
 *   (involvedObject.namespace must equal the Event's namespace), names unique
 *   in a namespace (409 AlreadyExists).
 * - A patch whose body carries `metadata.resourceVersion` other than the
 *   stored one is 409 Conflict, as for an update (the patched object's
 *   resourceVersion is the precondition: k8s.io/apiserver
 *   pkg/registry/generic/registry/store.go, Update).
 * - SidecarProfiles (`sidecarprofiles.sidecar-injector.io/v1alpha1`), a
 *   namespaced custom resource whose CRD has the status subresource, as
 *   apiextensions-apiserver serves it (pkg/registry/customresource
 *   strategy.go and status_strategy.go): list items carry apiVersion and kind
 *   (unstructured lists); on create metadata.generation is 1 and status is
 *   dropped; a write of the main resource keeps the stored status and bumps
 *   generation when anything outside metadata changed; a write of `/status`
 *   changes status only and never generation; a write that changes nothing
 *   is not stored again (no new resourceVersion, no event). Without the CRD
 *   (`uninstallSidecarProfileCrd`) every path of the resource is 404 and its
 *   watches end, as when a CRD is deleted.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyPatch, type Operation } from 'rfc6902';
import { parse as parseCel } from '@bufbuild/cel';
import { generateCertificates } from '../../src/tls/generate.js';

type Obj = Record<string, unknown>;

export interface FakeOptions {
  /** `/version`; default a plain v1.31.2. */
  version?: { gitVersion: string; major: string; minor: string };
  /** Which OpenAPI documents exist, and whether core/v1 Container has restartPolicy. */
  openapi?: { v3: boolean; v2: boolean; restartPolicy: boolean };
  /** Bearer tokens accepted; default ["test-token"]. */
  tokens?: string[];
  /** Webhook matchConditions enabled (1.28+ with the gate on); default true. */
  matchConditions?: boolean;
  /** The SidecarProfile CRD is installed; default true. */
  sidecarProfileCrd?: boolean;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  body: unknown;
}

interface Watcher {
  res: ServerResponse;
  bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Only events of this collection. */
  collection: string;
  namespace: string | undefined;
}

interface HistoryEntry {
  rv: number;
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

function status(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

const meta = (o: Obj) => o.metadata as Obj;

/** Collections the fake serves, by the plural in their path. */
const LIST_KINDS: Record<string, string> = {
  namespaces: 'NamespaceList',
  pods: 'PodList',
  replicasets: 'ReplicaSetList',
  jobs: 'JobList',
  deployments: 'DeploymentList',
  statefulsets: 'StatefulSetList',
  daemonsets: 'DaemonSetList',
  cronjobs: 'CronJobList',
  configmaps: 'ConfigMapList',
  secrets: 'SecretList',
  events: 'EventList',
  mutatingwebhookconfigurations: 'MutatingWebhookConfigurationList',
  leases: 'LeaseList',
  sidecarprofiles: 'SidecarProfileList',
};

/** Custom resources with the status subresource: collection → apiVersion and kind. */
const CUSTOM_RESOURCES: Record<string, { apiVersion: string; kind: string }> = {
  sidecarprofiles: { apiVersion: 'sidecar-injector.io/v1alpha1', kind: 'SidecarProfile' },
};

export class FakeApiServer {
  url = '';
  port = 0;
  ca = '';
  readonly requests: RequestRecord[] = [];
  /** Milliseconds to hold each answer of a path matching the pattern (to test timeouts and non-blocking writes). */
  readonly delays: { pattern: RegExp; ms: number }[] = [];
  /** Hold requests matching the pattern until the promise settles (a test decides when the API server answers). */
  readonly holds: { pattern: RegExp; until: Promise<void> }[] = [];
  /** Answer the next requests matching the pattern with this status (one use per entry). */
  readonly failures: { pattern: RegExp; code: number }[] = [];
  opts: Required<FakeOptions>;
  /** Runs before each authenticated request is routed: lets a test change the world between two calls. */
  beforeRoute: ((r: RequestRecord) => void) | undefined;

  private server: Server | undefined;
  private key = '';
  private cert = '';
  private sockets = new Set<Socket>();
  private watchers = new Set<Watcher>();
  /** Objects by collection key (`namespaces`, `pods`, `replicasets`…) then by `ns/name` or `name`. */
  private store = new Map<string, Map<string, Obj>>();
  private rv = 100;
  private history: HistoryEntry[] = [];
  /** Watches from a resourceVersion below this get 410 (what etcd compaction does). */
  private oldestRv = 0;

  constructor(opts: FakeOptions = {}) {
    this.opts = {
      version: opts.version ?? { gitVersion: 'v1.31.2', major: '1', minor: '31' },
      openapi: opts.openapi ?? { v3: true, v2: true, restartPolicy: true },
      tokens: opts.tokens ?? ['test-token'],
      matchConditions: opts.matchConditions ?? true,
      sidecarProfileCrd: opts.sidecarProfileCrd ?? true,
    };
  }

  async start(port = 0): Promise<void> {
    if (!this.cert) {
      const set = await generateCertificates({ service: 'kubernetes', namespace: 'default', dev: true, days: 1 });
      this.ca = set.caCert;
      this.cert = set.cert;
      this.key = set.key;
    }
    const server = createServer({ cert: this.cert, key: this.key }, (req, res) => void this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.url = `https://127.0.0.1:${this.port}`;
  }

  /** Closes every connection and the listener, as an API server going away does. */
  async stop(): Promise<void> {
    for (const w of this.watchers) clearTimeout(w.timer);
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** An API server restart: everything dropped, then back on the same port. */
  async restart(downMs = 200): Promise<void> {
    await this.stop();
    await new Promise((r) => setTimeout(r, downMs));
    await this.start(this.port);
  }

  /** Writes a kubeconfig for this server (CA pinned, bearer token) into `dir`. */
  kubeconfig(dir: string, token = this.opts.tokens[0] ?? '', name = 'kubeconfig'): string {
    const file = join(dir, name);
    const ca = Buffer.from(this.ca).toString('base64');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake\n  cluster:\n    server: ${this.url}\n    certificate-authority-data: ${ca}`,
        'users:',
        `- name: tester\n  user:\n    token: ${token}`,
        'contexts:',
        '- name: fake\n  context:\n    cluster: fake\n    user: tester',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return file;
  }

  // ---- objects -------------------------------------------------------------

  private bucket(collection: string): Map<string, Obj> {
    let b = this.store.get(collection);
    if (!b) this.store.set(collection, (b = new Map()));
    return b;
  }

  private record(collection: string, type: HistoryEntry['type'], object: Obj): void {
    this.history.push({ rv: Number(meta(object).resourceVersion), collection, type, object: structuredClone(object) });
    for (const w of this.watchers) {
      if (w.collection !== collection) continue;
      if (w.namespace && meta(object).namespace !== w.namespace) continue;
      this.send(w, { type, object });
    }
  }

  /** Creates or replaces an object, with the metadata the API server fills in; returns the stored copy. */
  put(collection: string, object: Obj): Obj {
    const m = { ...(object.metadata as Obj) };
    const namespace = m.namespace as string | undefined;
    const key = namespace ? `${namespace}/${m.name as string}` : (m.name as string);
    const bucket = this.bucket(collection);
    const existing = bucket.get(key);
    m.resourceVersion = String(++this.rv);
    m.uid = (existing && meta(existing).uid) ?? m.uid ?? randomUUID();
    m.creationTimestamp = (existing && meta(existing).creationTimestamp) ?? m.creationTimestamp ?? new Date().toISOString();
    const stored = { ...object, metadata: m };
    bucket.set(key, stored);
    this.record(collection, existing ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  remove(collection: string, key: string): void {
    const bucket = this.bucket(collection);
    const existing = bucket.get(key);
    if (!existing) return;
    bucket.delete(key);
    const gone = { ...existing, metadata: { ...meta(existing), resourceVersion: String(++this.rv) } };
    this.record(collection, 'DELETED', gone);
  }

  get(collection: string, key: string): Obj | undefined {
    return this.bucket(collection).get(key);
  }

  all(collection: string): Obj[] {
    return [...this.bucket(collection).values()];
  }

  /**
   * A MutatingWebhookConfiguration for pod CREATE as the chart installs it (no caBundle yet): split by the
   * namespace label, `namespaces.pods.…` for namespaces labelled enabled, `pods.…` (index 1, the one that
   * may carry matchConditions) for the rest.
   */
  webhookConfiguration(name: string, serviceNamespace = 'ops'): Obj {
    const hook = (hookName: string, operator: 'In' | 'NotIn') => ({
      name: hookName,
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      clientConfig: { service: { name: 'sidecar-injector', namespace: serviceNamespace, path: '/mutate' } },
      namespaceSelector: { matchExpressions: [{ key: 'sidecar-injector.io/injection', operator, values: ['enabled'] }] },
    });
    return this.put('mutatingwebhookconfigurations', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name },
      webhooks: [hook('namespaces.pods.sidecar-injector.io', 'In'), hook('pods.sidecar-injector.io', 'NotIn')],
    });
  }

  namespace(name: string, labels: Record<string, string> = {}): Obj {
    return this.put('namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }

  deleteNamespace(name: string): void {
    this.remove('namespaces', name);
  }

  /**
   * A SidecarProfile written by its owner (the main resource, as kubectl apply does): created with
   * generation 1, or updated with the stored status kept and generation bumped when the spec changed.
   */
  sidecarProfile(namespace: string, name: string, spec: unknown, labels: Record<string, string> = {}): Obj {
    const key = `${namespace}/${name}`;
    const object = { ...CUSTOM_RESOURCES.sidecarprofiles, metadata: { name, namespace, labels }, spec };
    const found = this.get('sidecarprofiles', key);
    return found ? this.writeCustom('sidecarprofiles', found, object, false) : this.put('sidecarprofiles', this.createdCustom(object));
  }

  deleteSidecarProfile(namespace: string, name: string): void {
    this.remove('sidecarprofiles', `${namespace}/${name}`);
  }

  /** Deletes the CRD: its objects go (DELETED events), its watches end, its paths answer 404. */
  uninstallSidecarProfileCrd(): void {
    for (const o of this.all('sidecarprofiles')) this.remove('sidecarprofiles', `${meta(o).namespace as string}/${meta(o).name as string}`);
    for (const w of this.watchers) {
      if (w.collection !== 'sidecarprofiles') continue;
      clearTimeout(w.timer);
      this.watchers.delete(w);
      w.res.end();
    }
    this.opts.sidecarProfileCrd = false;
  }

  installSidecarProfileCrd(): void {
    this.opts.sidecarProfileCrd = true;
  }

  /** customResourceStrategy.PrepareForCreate: generation 1, status dropped (the status subresource owns it). */
  private createdCustom(object: Obj): Obj {
    const created: Obj = { ...object, metadata: { ...meta(object), generation: 1 } };
    delete created.status;
    return created;
  }

  /**
   * A write of a custom resource with the status subresource: the main resource keeps the stored status and
   * bumps generation when anything outside metadata changed (customResourceStrategy.PrepareForUpdate); `/status`
   * takes only status from the write (statusStrategy.PrepareForUpdate). Nothing changed: nothing stored.
   */
  private writeCustom(collection: string, found: Obj, next: Obj, status: boolean): Obj {
    let result: Obj;
    if (status) {
      result = { ...found };
      if (next.status === undefined) delete result.status;
      else result.status = next.status;
    } else {
      const kept = { resourceVersion: meta(found).resourceVersion, generation: meta(found).generation, uid: meta(found).uid, creationTimestamp: meta(found).creationTimestamp };
      result = { ...next, metadata: { ...meta(next), ...kept } };
      delete result.status;
      if (found.status !== undefined) result.status = found.status;
      const outside = (o: Obj) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata'));
      if (!sameJson(outside(result), outside(found))) result.metadata = { ...meta(result), generation: Number(meta(found).generation ?? 1) + 1 };
    }
    if (sameJson(result, found)) return found;
    return this.put(collection, result);
  }

  /** Forgets history up to now: watches and continue tokens from older resourceVersions get 410 Gone (etcd compaction). */
  compact(): void {
    this.oldestRv = this.rv;
    this.history = [];
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      const kind = CUSTOM_RESOURCES[w.collection] ?? { kind: (LIST_KINDS[w.collection] ?? 'List').replace(/List$/, ''), apiVersion: 'v1' };
      if (w.bookmarks) this.send(w, { type: 'BOOKMARK', object: { ...kind, metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** Cuts every open watch stream mid-flight (a load balancer or network dropping them). */
  dropWatches(): void {
    for (const w of this.watchers) {
      clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
    this.watchers.clear();
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  // ---- HTTP ----------------------------------------------------------------

  private send(w: Watcher, event: Obj): void {
    w.res.write(`${JSON.stringify(event)}\n`);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      this.json(res, 400, status(400, 'BadRequest', 'body is not JSON'));
      return;
    }
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, contentType: req.headers['content-type'], body };
    this.requests.push(record);

    const auth = req.headers.authorization ?? '';
    if (!this.opts.tokens.some((t) => auth === `Bearer ${t}`)) {
      this.json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const delay = this.delays.find((d) => d.pattern.test(`${record.method} ${url.pathname}`));
    if (delay) await new Promise((r) => setTimeout(r, delay.ms).unref());
    const hold = this.holds.find((h) => h.pattern.test(`${record.method} ${url.pathname}`));
    if (hold) await hold.until;
    const failure = this.failures.findIndex((f) => f.pattern.test(`${record.method} ${url.pathname}`));
    if (failure !== -1) {
      const [f] = this.failures.splice(failure, 1);
      this.json(res, f!.code, status(f!.code, f!.code >= 500 ? 'InternalError' : 'BadRequest', 'injected failure'));
      return;
    }
    if (res.destroyed) return;
    this.beforeRoute?.(record);
    this.route(record, res);
  }

  private route(r: RequestRecord, res: ServerResponse): void {
    const p = r.path;
    if (p === '/version' && r.method === 'GET') return this.json(res, 200, { ...this.opts.version, platform: 'linux/amd64', goVersion: 'go1.22.0', compiler: 'gc' });
    if (p.startsWith('/openapi/')) return this.openapi(p, res);

    // /api/v1/{plural}[/{name}] | /api/v1/namespaces/{ns}/{plural}[/{name}[/{subresource}]] | /apis/{group}/{version}/...
    const m = /^\/(?:api\/v1|apis\/[^/]+\/[^/]+)(?:\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?|\/([^/]+)(?:\/([^/]+))?)$/.exec(p);
    if (!m) return this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const namespaced = m[2] !== undefined;
    const namespace = namespaced ? decodeURIComponent(m[1]!) : undefined;
    const collection = namespaced ? m[2]! : m[5]!;
    const name = namespaced ? (m[3] === undefined ? undefined : decodeURIComponent(m[3])) : m[6] === undefined ? undefined : decodeURIComponent(m[6]);
    const subresource = m[4];
    if (!LIST_KINDS[collection]) return this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const custom = CUSTOM_RESOURCES[collection];
    if (custom && (!this.opts.sidecarProfileCrd || !p.startsWith(`/apis/${custom.apiVersion}/`))) {
      return this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    }
    if (subresource !== undefined && !(custom && subresource === 'status')) return this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));

    if (name === undefined) {
      if (r.method === 'GET' && r.query.get('watch') === 'true') return this.watch(collection, namespace, r.query, res);
      if (r.method === 'GET') return this.list(p, collection, namespace, r.query, res);
      if (r.method === 'POST') return this.create(collection, namespace, r.body as Obj, res, r.query.get('dryRun') === 'All');
    } else {
      const key = namespace ? `${namespace}/${name}` : name;
      const found = this.get(collection, key);
      if (!found) return this.json(res, 404, status(404, 'NotFound', `${collection} "${name}" not found`, { name, kind: collection }));
      if (r.method === 'GET') return this.json(res, 200, found);
      if (r.method === 'PATCH') return this.patch(collection, found, r, res, subresource === 'status');
      if (r.method === 'PUT') return this.update(collection, found, r.body as Obj, res, subresource === 'status');
      if (subresource !== undefined) return this.json(res, 405, status(405, 'MethodNotAllowed', `${r.method} is not supported on ${subresource}`));
      if (r.method === 'DELETE') {
        this.remove(collection, key);
        return this.json(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: collection, uid: meta(found).uid } });
      }
    }
    this.json(res, 405, status(405, 'MethodNotAllowed', `${r.method} is not supported here`));
  }

  private openapi(p: string, res: ServerResponse): void {
    const { v2, v3, restartPolicy } = this.opts.openapi;
    const container = { type: 'object', required: ['name'], properties: { name: { type: 'string' }, image: { type: 'string' }, ...(restartPolicy ? { restartPolicy: { type: 'string' } } : {}) } };
    if (p === '/openapi/v3' && v3) return this.json(res, 200, { paths: { 'api/v1': { serverRelativeURL: '/openapi/v3/api/v1?hash=ABC123' }, apis: { serverRelativeURL: '/openapi/v3/apis?hash=DEF' } } });
    if (p === '/openapi/v3/api/v1' && v3) return this.json(res, 200, { openapi: '3.0.0', components: { schemas: { 'io.k8s.api.core.v1.Container': container } } });
    if (p === '/openapi/v2' && v2) return this.json(res, 200, { swagger: '2.0', definitions: { 'io.k8s.api.core.v1.Container': container } });
    this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  private list(path: string, collection: string, namespace: string | undefined, q: URLSearchParams, res: ServerResponse): void {
    const selector = parseSelector(q.get('labelSelector'));
    let items = this.all(collection).filter((o) => (!namespace || meta(o).namespace === namespace) && selector((meta(o).labels ?? {}) as Record<string, string>));
    items.sort((a, b) => {
      const ka = `${(meta(a).namespace as string) ?? ''}/${meta(a).name as string}`;
      const kb = `${(meta(b).namespace as string) ?? ''}/${meta(b).name as string}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    let start = 0;
    let listRv = this.rv;
    const token = q.get('continue');
    if (token) {
      const parsed = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { rv: number; start: number };
      if (parsed.rv < this.oldestRv) {
        return this.json(res, 410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'));
      }
      start = parsed.start;
      listRv = parsed.rv;
    }
    const limit = Number(q.get('limit') ?? '0');
    const page = limit > 0 ? items.slice(start, start + limit) : items.slice(start);
    const more = limit > 0 && start + limit < items.length;
    // Typed lists carry kind and apiVersion on the list, not on each item; unstructured (custom resource) lists on both.
    items = CUSTOM_RESOURCES[collection] ? page : page.map((o) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'kind' && k !== 'apiVersion')));
    const metadata: Obj = { resourceVersion: String(listRv) };
    if (more) metadata.continue = Buffer.from(JSON.stringify({ rv: listRv, start: start + limit })).toString('base64');
    const group = /^\/apis\/([^/]+\/[^/]+)\//.exec(path)?.[1] ?? 'v1';
    this.json(res, 200, { kind: LIST_KINDS[collection], apiVersion: group, metadata, items });
  }

  private watch(collection: string, namespace: string | undefined, q: URLSearchParams, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    const from = Number(q.get('resourceVersion') ?? '0');
    const w: Watcher = { res, bookmarks: q.get('allowWatchBookmarks') === 'true', timer: undefined, collection, namespace };
    if (from !== 0 && from < this.oldestRv) {
      this.send(w, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.oldestRv})`) });
      res.end();
      return;
    }
    for (const h of this.history) {
      if (h.rv > from && h.collection === collection && (!namespace || meta(h.object).namespace === namespace)) this.send(w, { type: h.type, object: h.object });
    }
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) {
      w.timer = setTimeout(() => {
        this.watchers.delete(w);
        res.end();
      }, timeout * 1000);
    }
    this.watchers.add(w);
    res.on('close', () => {
      clearTimeout(w.timer);
      this.watchers.delete(w);
    });
  }

  private create(collection: string, namespace: string | undefined, body: Obj, res: ServerResponse, dryRun = false): void {
    const m = (body?.metadata ?? {}) as Obj;
    const refused = collection === 'leases' && namespace ? this.leaseWebhookFailure(namespace, (m.labels ?? {}) as Record<string, string>) : undefined;
    if (refused) return this.json(res, 500, status(500, 'InternalError', `Internal error occurred: ${refused}`));
    if (!m.name) return this.json(res, 422, status(422, 'Invalid', `${collection} is invalid: metadata.name: Required value`));
    if (m.namespace !== undefined && m.namespace !== namespace) {
      return this.json(res, 400, status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'));
    }
    if (collection === 'events') {
      const problem = eventProblem(body, namespace ?? '');
      if (problem) return this.json(res, 422, status(422, 'Invalid', `Event "${m.name as string}" is invalid: ${problem}`));
    }
    if (collection === 'leases') {
      const problem = leaseProblem(body);
      if (problem) return this.json(res, 422, status(422, 'Invalid', `Lease.coordination.k8s.io "${m.name as string}" is invalid: ${problem}`));
    }
    const key = namespace ? `${namespace}/${m.name as string}` : (m.name as string);
    if (this.get(collection, key)) return this.json(res, 409, status(409, 'AlreadyExists', `${collection} "${m.name as string}" already exists`));
    const object = { ...body, metadata: { ...m, namespace } };
    if (dryRun) return this.json(res, 201, object);
    this.json(res, 201, this.put(collection, CUSTOM_RESOURCES[collection] ? this.createdCustom(object) : object));
  }

  /** Mutating admission of a Lease CREATE: the first matching webhook fails the request (this fake serves no Service). */
  private leaseWebhookFailure(namespace: string, labels: Record<string, string>): string | undefined {
    type Hook = { name: string; rules?: { resources?: string[]; operations?: string[] }[]; clientConfig?: { service?: { name?: string } }; namespaceSelector?: { matchLabels?: Record<string, string> }; objectSelector?: { matchLabels?: Record<string, string> } };
    const matches = (sel: Record<string, string> | undefined, have: Record<string, string>) => Object.entries(sel ?? {}).every(([k, v]) => have[k] === v);
    const configurations = this.all('mutatingwebhookconfigurations').sort((a, b) => String(meta(a).name).localeCompare(String(meta(b).name)));
    for (const w of configurations.flatMap((c) => (c.webhooks as Hook[] | undefined) ?? [])) {
      if (!(w.rules ?? []).some((r) => r.resources?.includes('leases') && r.operations?.includes('CREATE'))) continue;
      if (!matches(w.namespaceSelector?.matchLabels, { 'kubernetes.io/metadata.name': namespace }) || !matches(w.objectSelector?.matchLabels, labels)) continue;
      // This fake serves no Service: every call fails closed.
      const svc = w.clientConfig?.service?.name ?? '?';
      return `failed calling webhook "${w.name}": failed to call webhook: service "${svc}" not found`;
    }
    return undefined;
  }

  private update(collection: string, found: Obj, body: Obj, res: ServerResponse, statusOnly = false): void {
    const m = (body?.metadata ?? {}) as Obj;
    const name = meta(found).name as string;
    if (m.name !== name) return this.json(res, 400, status(400, 'BadRequest', `the name of the object (${String(m.name)}) does not match the name on the URL (${name})`));
    if (m.resourceVersion !== undefined && m.resourceVersion !== meta(found).resourceVersion) {
      return this.json(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${collection} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
    }
    const problem = collection === 'leases' ? leaseProblem(body) : undefined;
    if (problem) return this.json(res, 422, status(422, 'Invalid', `Lease.coordination.k8s.io "${name}" is invalid: ${problem}`));
    const next = { ...body, metadata: { ...m, namespace: meta(found).namespace } };
    if (CUSTOM_RESOURCES[collection]) return this.json(res, 200, this.writeCustom(collection, found, next, statusOnly));
    this.json(res, 200, this.put(collection, next));
  }

  private patch(collection: string, found: Obj, r: RequestRecord, res: ServerResponse, statusOnly = false): void {
    const type = (r.contentType ?? '').split(';')[0];
    let next: Obj;
    const name = meta(found).name as string;
    const conflict = () =>
      this.json(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${collection} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
    if (type === 'application/json-patch+json') {
      next = structuredClone(found);
      const results = applyPatch(next, r.body as Operation[]);
      const failed = results.find((x) => x !== null);
      if (failed) return this.json(res, 422, status(422, 'Invalid', `the server rejected our request due to an error in our request: ${String(failed)}`));
    } else if (type === 'application/strategic-merge-patch+json' || type === 'application/merge-patch+json') {
      // RFC 7386: maps merge recursively, null deletes, lists are replaced (strategic merge differs only for keyed lists).
      next = mergePatch(found, r.body) as Obj;
      // A spec change bumps metadata.generation (the apps strategies' PrepareForUpdate), so controllers see a new rollout.
      if (GENERATION_KINDS.has(collection) && JSON.stringify(next.spec) !== JSON.stringify(found.spec)) {
        next.metadata = { ...meta(next), generation: Number(meta(found).generation ?? 1) + 1 };
      }
      const precondition = ((r.body as Obj | null)?.metadata as Obj | undefined)?.resourceVersion;
      if (precondition !== undefined && precondition !== null && precondition !== meta(found).resourceVersion) return conflict();
    } else {
      return this.json(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`));
    }
    if (collection === 'mutatingwebhookconfigurations') {
      const problem = matchConditionsProblem(next);
      if (problem) return this.json(res, 422, status(422, 'Invalid', `MutatingWebhookConfiguration.admissionregistration.k8s.io "${meta(next).name as string}" is invalid: ${problem}`));
      if (!this.opts.matchConditions) for (const w of (next.webhooks as Obj[] | undefined) ?? []) delete w.matchConditions;
    }
    if (CUSTOM_RESOURCES[collection]) return this.json(res, 200, this.writeCustom(collection, found, next, statusOnly));
    this.json(res, 200, this.put(collection, next));
  }
}

/** Equality-based label selectors (`a=b,c!=d,e`), as `labelSelector` takes them. */
function parseSelector(text: string | null): (labels: Record<string, string>) => boolean {
  const terms = (text ?? '').split(',').filter(Boolean).map((t) => /^([^!=]+)(!=|==|=)?(.*)$/.exec(t.trim())!);
  return (labels) =>
    terms.every(([, key, op, value]) => {
      const has = Object.hasOwn(labels, key!);
      if (!op) return has;
      return op === '!=' ? labels[key!] !== value : has && labels[key!] === value;
    });
}

/** kube-apiserver's checks of a core/v1 Event that our recorder could get wrong. */
function eventProblem(e: Obj, namespace: string): string | undefined {
  const involved = (e.involvedObject ?? {}) as Obj;
  if (!involved.kind || !involved.name) return 'involvedObject: Required value';
  const involvedNs = (involved.namespace as string | undefined) ?? '';
  if (involvedNs === '' ? !['', 'default'].includes(namespace) : involvedNs !== namespace) return 'involvedObject.namespace: Invalid value: does not match event.namespace';
  if (e.type !== 'Normal' && e.type !== 'Warning') return 'type: Unsupported value';
  if (typeof e.reason !== 'string' || e.reason === '') return 'reason: Required value';
  if (typeof e.reportingComponent === 'string' && typeof e.reportingInstance !== 'string') return 'reportingInstance: Required value';
  return undefined;
}

/** MicroTime as the API server parses it (RFC 3339 with microseconds). */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** ValidateLeaseSpec (coordination validation.go), and the MicroTime format the decoder accepts. */
function leaseProblem(lease: Obj): string | undefined {
  const spec = (lease.spec ?? {}) as Obj;
  if (spec.leaseDurationSeconds !== undefined && !(Number(spec.leaseDurationSeconds) > 0)) return 'spec.leaseDurationSeconds: Invalid value: must be greater than 0';
  for (const f of ['renewTime', 'acquireTime']) {
    if (spec[f] !== undefined && !MICRO_TIME.test(String(spec[f]))) return `spec.${f}: Invalid value: not a MicroTime`;
  }
  return undefined;
}

const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** validateMatchConditions (admissionregistration validation.go), the expression compiled by a real CEL parser. */
function matchConditionsProblem(mwc: Obj): string | undefined {
  const webhooks = (mwc.webhooks as Obj[] | undefined) ?? [];
  for (const [i, w] of webhooks.entries()) {
    const conditions = (w.matchConditions as { name?: string; expression?: string }[] | undefined) ?? [];
    const at = `webhooks[${i}].matchConditions`;
    if (conditions.length > 64) return `${at}: Too many: ${conditions.length}: must have at most 64 items`;
    const names = new Set<string>();
    for (const [j, c] of conditions.entries()) {
      if (!c.name) return `${at}[${j}].name: Required value`;
      if (!QUALIFIED_NAME.test(c.name)) return `${at}[${j}].name: Invalid value: "${c.name}": must be a qualified name`;
      if (names.has(c.name)) return `${at}[${j}].name: Duplicate value: "${c.name}"`;
      names.add(c.name);
      if (!c.expression) return `${at}[${j}].expression: Required value`;
      try {
        parseCel(c.expression);
      } catch (err) {
        return `${at}[${j}].expression: Invalid value: "${c.expression}": compilation failed: ${(err as Error).message.split('\n')[0]}`;
      }
    }
  }
  return undefined;
}

/** Equal as JSON, whatever the key order (apimachinery's Semantic.DeepEqual on decoded objects); realm-independent, unlike isDeepStrictEqual on structuredClone's copies. */
function sameJson(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, x]) => [k, canonical(x)])) : v;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

const GENERATION_KINDS = new Set(['deployments', 'statefulsets', 'daemonsets']);

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target !== null && typeof target === 'object' && !Array.isArray(target) ? (target as Obj) : {};
  const merged: Obj = { ...base };
  for (const [k, v] of Object.entries(patch as Obj)) merged[k] = v === null ? undefined : mergePatch(base[k], v);
  return Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
}
