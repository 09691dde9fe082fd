/**
 * The HTTP application: routes only. Content type, size cap and decoding
 * (body.ts) here, then the pure pipeline (core/mutate.ts) decides. Listening, TLS and
 * shutdown live in listen.ts.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import type { PodEvent } from '../core/events.js';
import type { ServerFeatures } from '../core/inject.js';
import { mutate, type MutateSummary, type NamespaceLabels } from '../core/mutate.js';
import type { TenantProfileLookup } from '../core/tenant-profile.js';
import { complete, denied, type AdmissionReviewOut } from '../core/response.js';
import { isPodCreate, parseReview, type AdmissionReviewIn } from '../core/review.js';
import type { NamespaceLookup } from '../kube/namespaces.js';
import { isJsonRequest, readJsonBody } from './body.js';
import { httpError, type HttpErrorCode } from './errors.js';
import { closeAfterRefusal } from './linger.js';

export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface AppDeps {
  /** The config in force; read once per admission so a reload never splits one. */
  config: () => CompiledConfig;
  /** Labels of namespaces the cache holds (synchronous; undefined when not seen). */
  namespaceLabels: NamespaceLabels;
  /** With a cluster: one bounded read of a namespace the cache has not seen. */
  lookupNamespace?: (namespace: string) => Promise<NamespaceLookup>;
  /** The SidecarProfile index (SPEC 9); absent: no tenant profile is served. */
  tenantProfiles?: TenantProfileLookup;
  /** What the API server supports, as detected at start. */
  server: () => ServerFeatures;
  /** With --events: receives the Event an admission deserves; must not block. */
  recordEvent?: (event: PodEvent) => void;
  logger: Logger;
  /** Monotonic clock in milliseconds. */
  now: () => number;
  /** False once shutdown has begun. */
  ready: () => boolean;
  /** Why the server is not ready yet for another reason (the namespace cache has not synced), or undefined. */
  notReady?: () => string | undefined;
  /** Called once per request to /mutate when its answer is sent: the decision, or `error` for a bad request. */
  onAdmission?: (decision: MutateSummary['decision'], seconds: number) => void;
}

/** /healthz and /readyz, the same on the webhook and metrics ports. */
export function addHealthRoutes(app: express.Express, ready: () => boolean, notReady: () => string | undefined = () => undefined): void {
  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req: Request, res: Response) => {
    const why = ready() ? notReady() : 'shutting down';
    if (why === undefined) res.json({ status: 'ready' });
    else res.status(503).json({ status: why });
  });
}

/** Written directly: express's res.json() machinery (etag, freshness, charset) is measurable on this path. */
function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Answers with an error from the catalogue (errors.ts) as JSON. */
export function sendError(res: ServerResponse, code: HttpErrorCode, detail?: string): void {
  const { status, body } = httpError(code, detail);
  sendJson(res, status, body);
}

/**
 * The request listener: `POST /mutate` as the API server sends it (`/mutate?timeout=10s`) goes
 * straight to its handler: express's per-request work (router state, prototype swaps) and the
 * garbage it made were about 40 % of the webhook's CPU per admission (docs/performance.md). Express
 * routes everything else, the same handler included for the spellings its router also matches.
 */
export function createApp(deps: AppDeps): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((_req: Request, res: Response, next: NextFunction) => {
    closeWhenDraining(deps, res);
    next();
  });
  addHealthRoutes(app, deps.ready, deps.notReady);

  app.post('/mutate', (req: Request, res: Response) => handleMutate(deps, req, res));
  app.all('/mutate', (_req: Request, res: Response) => {
    res.setHeader('Allow', 'POST');
    sendError(res, 'METHOD_NOT_ALLOWED');
  });
  app.use((_req: Request, res: Response) => sendError(res, 'NOT_FOUND'));

  return (req, res) => {
    if (req.method === 'POST' && isMutatePath(req.url)) {
      closeWhenDraining(deps, res);
      handleMutate(deps, req, res);
    } else {
      void app(req, res);
    }
  };
}

function isMutatePath(url: string | undefined): boolean {
  return url === '/mutate' || (url !== undefined && url.startsWith('/mutate?'));
}

/** While draining, tell keep-alive clients to go elsewhere for their next request. */
function closeWhenDraining(deps: AppDeps, res: ServerResponse): void {
  if (!deps.ready()) res.setHeader('Connection', 'close');
}

/** One /mutate request: read → namespace → decide → answer, each step below. */
function handleMutate(deps: AppDeps, req: IncomingMessage, res: ServerResponse): void {
  const start = deps.now();
  const exchange: Exchange = { deps, res, start, decision: undefined };
  res.on('finish', () => deps.onAdmission?.(exchange.decision ?? 'error', (deps.now() - start) / 1000));
  void readReview(req, res, deps.logger)
    .then(async (review) => {
      if (!review) return;
      const config = deps.config();
      answer(exchange, review, config, await namespaceOf(review, config, deps));
    })
    .catch((err: unknown) => {
      // Nothing above should throw; if it does, answer and log rather than take the process down.
      deps.logger.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL');
    });
}

interface Exchange {
  deps: AppDeps;
  res: ServerResponse;
  start: number;
  /** What the admission metric counts once the answer is sent; `error` when none was decided. */
  decision: MutateSummary['decision'] | undefined;
}

/** Content type, body and AdmissionReview shape; a bad request is answered here (400/413/415) and yields nothing. */
async function readReview(req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<AdmissionReviewIn | undefined> {
  if (!isJsonRequest(req)) {
    logger.warn({ contentType: req.headers['content-type'] ?? null }, 'rejected request: unsupported content type');
    // Refused before its body is read: the same bounded lingering close as a body over the cap.
    closeAfterRefusal(req, res, 0, MAX_BODY_BYTES);
    sendError(res, 'UNSUPPORTED_MEDIA_TYPE', `got ${JSON.stringify(req.headers['content-type'] ?? null)}`);
    return undefined;
  }
  const body = await readJsonBody(req, MAX_BODY_BYTES);
  if (!body.ok) {
    logger.warn({ code: body.code, problem: body.detail }, 'rejected request');
    // The client may still be sending: answer now, then read and discard the rest (bounded) before closing.
    closeAfterRefusal(req, res, body.received ?? 0, MAX_BODY_BYTES);
    sendError(res, body.code, body.detail);
    return undefined;
  }
  const parsed = parseReview(body.value);
  if (!parsed.ok) {
    logger.warn({ problem: parsed.error }, 'rejected request: invalid AdmissionReview');
    sendError(res, 'INVALID_REVIEW', parsed.error);
    return undefined;
  }
  return parsed.review;
}

interface NamespaceView {
  labels: NamespaceLabels;
  /** Why the labels could not be had (the pod is decided without them). */
  problem: string | undefined;
}

/** The cache's labels; a namespace it has not seen costs one bounded read, and only a Pod CREATE the rules could reach needs it. */
async function namespaceOf(review: AdmissionReviewIn, config: CompiledConfig, deps: AppDeps): Promise<NamespaceView> {
  const namespace = review.request.namespace ?? '';
  const needsRead =
    deps.lookupNamespace && deps.namespaceLabels(namespace) === undefined && isPodCreate(review.request) && !config.excludedNamespaces.has(namespace);
  if (!needsRead || !deps.lookupNamespace) return { labels: deps.namespaceLabels, problem: undefined };
  const found = await deps.lookupNamespace(namespace);
  return { labels: () => found.labels, problem: found.labels ? undefined : found.problem };
}

/** Runs the pure pipeline; a throw there is a bug and fails closed, as the API server would on a webhook error. */
function decide(review: AdmissionReviewIn, config: CompiledConfig, ns: NamespaceView, deps: AppDeps): { error: string } | { summary: MutateSummary; out: AdmissionReviewOut } {
  const { request, apiVersion } = review;
  try {
    const result = mutate(review, {
      config,
      namespaceLabels: ns.labels,
      server: deps.server(),
      tenantProfiles: deps.tenantProfiles,
      namespaceProblem: ns.problem,
      events: deps.recordEvent !== undefined,
    });
    if (!result.ok) return { error: result.error };
    if (result.event) deps.recordEvent?.(result.event);
    return { summary: result.summary, out: result.review };
  } catch (err) {
    deps.logger.error({ uid: request.uid, err }, 'admission failed');
    return {
      summary: { decision: 'error', namespace: request.namespace ?? '', pod: '', profiles: [], reason: String(err) },
      out: complete(apiVersion, request.uid, denied(500, `sidecar-injector internal error: ${(err as Error).message}`)),
    };
  }
}

/** Sends the answer and writes the one log line per admission (SPEC 7). */
function answer(x: Exchange, review: AdmissionReviewIn, config: CompiledConfig, ns: NamespaceView): void {
  const { deps, res } = x;
  const decided = decide(review, config, ns, deps);
  if ('error' in decided) {
    deps.logger.warn({ uid: review.request.uid, problem: decided.error }, 'rejected request: invalid object');
    sendError(res, 'INVALID_REVIEW', decided.error);
    return;
  }
  const { summary } = decided;
  x.decision = summary.decision;
  sendJson(res, 200, decided.out);
  deps.logger.info(
    {
      uid: review.request.uid,
      namespace: summary.namespace,
      pod: summary.pod,
      decision: summary.decision,
      profiles: summary.profiles,
      reason: summary.reason,
      ...(ns.problem ? { namespaceProblem: ns.problem } : {}),
      durationMs: Math.round((deps.now() - x.start) * 1000) / 1000,
    },
    'admission',
  );
}
