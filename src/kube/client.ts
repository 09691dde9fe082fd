/**
 * Cluster access through @kubernetes/client-node: its KubeConfig (kubeconfig
 * files, in-cluster service account with the token re-read as kubelet rotates
 * it, exec and OIDC plugins, proxies) authenticates every request, and its
 * Watch reads watch streams. We import those two modules, lazily and only
 * when there is a cluster, not the package index: the index loads every
 * generated model and API class (75 MB of RSS measured), and the handful of
 * calls we make need none of them. The process loads them from a build-time
 * bundle that also leaves out config.js's own import of that index (see
 * README, Design notes).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeResponse {
  status: number;
  body: unknown;
}

/** A non-2xx answer, with the API's Status reason and message when it sent one. */
export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WatchEvent {
  type: string;
  object: Record<string, unknown>;
}

export interface WatchHandle {
  /** Resolves when the stream ends: null when the server closed it, the error otherwise. */
  done: Promise<Error | null>;
  abort(): void;
}

export interface RequestOpts {
  body?: unknown;
  /** Defaults to application/json when there is a body. */
  contentType?: string;
  timeoutMs?: number;
}

export interface KubeClient {
  /** The API server's URL, for logs. */
  server: string;
  /** Where the config came from: the kubeconfig path or "in-cluster". */
  source: string;
  /** Resolves with 2xx answers; rejects with KubeError otherwise, or with the transport's error. */
  request(method: string, path: string, opts?: RequestOpts): Promise<KubeResponse>;
  watch(path: string, params: Record<string, string>, onEvent: (event: WatchEvent) => void): Promise<WatchHandle>;
}

export interface ConnectOptions {
  kubeconfig?: string;
  /** Like kubectl when there is no --kubeconfig and no pod: $KUBECONFIG (its first file), else ~/.kube/config. */
  kubectlDefaults?: boolean;
  env: Readonly<Record<string, string | undefined>>;
  /**
   * Load the lean bundle of client-node's KubeConfig and Watch that `npm run build` makes
   * (scripts/bundle-client-node.mjs) instead of the package's modules: what the real process does.
   * Tests that run the TypeScript sources in-process load the package's modules.
   */
  lean?: boolean;
}

type ClientNodeModules = typeof import('@kubernetes/client-node/dist/config.js') & typeof import('@kubernetes/client-node/dist/watch.js');

async function loadClientNode(lean: boolean): Promise<Pick<ClientNodeModules, 'KubeConfig' | 'Watch'>> {
  if (lean) return (await import(new URL('../vendor/client-node.js', import.meta.url).href)) as ClientNodeModules;
  const [config, watch] = await Promise.all([import('@kubernetes/client-node/dist/config.js'), import('@kubernetes/client-node/dist/watch.js')]);
  return { KubeConfig: config.KubeConfig, Watch: watch.Watch };
}

/** Explains a failed answer: the Status message when the body is one. */
function kubeError(status: number, body: unknown, what: string): KubeError {
  const s = body as { reason?: unknown; message?: unknown } | null;
  const reason = typeof s?.reason === 'string' ? s.reason : '';
  const message = typeof s?.message === 'string' ? s.message : `HTTP ${status}`;
  return new KubeError(status, reason, `${what}: ${status}${reason ? ` ${reason}` : ''}: ${message}`);
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

/**
 * The cluster named by `--kubeconfig`, else the one this pod runs in, else
 * undefined (no cluster features). Throws when a kubeconfig is named but
 * cannot be used.
 */
/** $KUBECONFIG's first existing file, else ~/.kube/config when it exists. */
function kubectlKubeconfig(env: ConnectOptions['env']): string | undefined {
  const candidates = [...(env.KUBECONFIG ?? '').split(delimiter).filter(Boolean), ...(env.HOME ? [join(env.HOME, '.kube', 'config')] : [])];
  return candidates.find((f) => existsSync(f));
}

export async function connectCluster(given: ConnectOptions): Promise<KubeClient | undefined> {
  const inPod = !!given.env.KUBERNETES_SERVICE_HOST && !!given.env.KUBERNETES_SERVICE_PORT && existsSync(SERVICE_ACCOUNT_TOKEN);
  const opts = !given.kubeconfig && !inPod && given.kubectlDefaults ? { ...given, kubeconfig: kubectlKubeconfig(given.env) } : given;
  const inCluster = !opts.kubeconfig && inPod;
  if (!opts.kubeconfig && !inCluster) return undefined;
  const { KubeConfig: Config, Watch } = await loadClientNode(opts.lean ?? false);
  const kc: KubeConfig = new Config();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromCluster();
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${opts.kubeconfig ?? '(in-cluster)'}: ${(err as Error).message}`, { cause: err });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig ${opts.kubeconfig ?? '(in-cluster)'}: no current cluster`);
  const server = cluster.server.replace(/\/+$/, '');
  const watcher = new Watch(kc);
  const keepAlive = new HttpsAgent({ keepAlive: true, maxSockets: 8 });

  const request = async (method: string, path: string, ro: RequestOpts = {}): Promise<KubeResponse> => {
    const url = new URL(server + path);
    const headers: Record<string, string> = { Accept: 'application/json' };
    const payload = ro.body === undefined ? undefined : typeof ro.body === 'string' ? ro.body : JSON.stringify(ro.body);
    if (payload !== undefined) {
      headers['Content-Type'] = ro.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const options: RequestOptions = { method, headers };
    // Adds the CA, client certificate, bearer token (re-read from its file as it rotates) and proxy agent.
    await kc.applyToHTTPSOptions(options);
    // KubeConfig makes a new agent per call; a plain one (no proxy) is swapped for one shared keep-alive agent,
    // so each call does not pay a TLS handshake. The TLS options stay on the request and key the agent's pool.
    if (options.agent?.constructor === HttpsAgent) options.agent = keepAlive;
    const signal = ro.timeoutMs === undefined ? undefined : AbortSignal.timeout(ro.timeoutMs);
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, { ...options, signal }, (res) => {
        readBody(res).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject);
      });
      req.on('error', (err) => reject(err.name === 'AbortError' ? new Error(`${method} ${path}: no answer within ${ro.timeoutMs} ms`) : err));
      req.end(payload);
    });
    let body: unknown = text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // Not JSON (a proxy's error page): keep the text for the message.
    }
    if (status < 200 || status > 299) throw kubeError(status, body, `${method} ${path}`);
    return { status, body };
  };

  const watch = async (path: string, params: Record<string, string>, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> => {
    let settle: (err: Error | null) => void = () => undefined;
    const done = new Promise<Error | null>((resolve) => (settle = resolve));
    const controller = await watcher.watch(
      path,
      params,
      (type: string, object: Record<string, unknown>) => onEvent({ type, object }),
      (err: unknown) => settle(err ? (err instanceof Error ? err : new Error(String(err))) : null),
    );
    return { done, abort: () => controller.abort() };
  };

  return { server, source: opts.kubeconfig ?? 'in-cluster', request, watch };
}
