/**
 * The HTTP application: routes only. Content type, size cap and decoding
 * (body.ts) here, then the pure pipeline (core/mutate.ts) decides. Listening, TLS and
 * shutdown live in listen.ts.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import type { PodEvent } from '../core/events.js';
import type { ServerFeatures } from '../core/inject.js';
import { mutate, type MutateSummary, type NamespaceLabels } from '../core/mutate.js';
import { complete, denied, type AdmissionReviewOut } from '../core/response.js';
import { isPodCreate, parseReview, type AdmissionReviewIn } from '../core/review.js';
import type { NamespaceLookup } from '../kube/namespaces.js';
import { readJsonBody } from './body.js';
import { httpError, type HttpErrorCode } from './errors.js';

export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface AppDeps {
  /** The config in force; read once per admission so a reload never splits one. */
  config: () => CompiledConfig;
  /** Labels of namespaces the cache holds (synchronous; undefined when not seen). */
  namespaceLabels: NamespaceLabels;
  /** With a cluster: one bounded read of a namespace the cache has not seen. */
  lookupNamespace?: (namespace: string) => Promise<NamespaceLookup>;
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
function sendJson(res: Response, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Answers with an error from the catalogue (errors.ts) as JSON. */
export function sendError(res: Response, code: HttpErrorCode, detail?: string): void {
  const { status, body } = httpError(code, detail);
  sendJson(res, status, body);
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // While draining, tell keep-alive clients to go elsewhere for their next request.
  app.use((_req: Request, res: Response, next: NextFunction) => {
    if (!deps.ready()) res.setHeader('Connection', 'close');
    next();
  });
  addHealthRoutes(app, deps.ready, deps.notReady);

  app.post('/mutate', (req: Request, res: Response) => {
    const start = deps.now();
    let summary: MutateSummary | undefined;
    res.on('finish', () => deps.onAdmission?.(summary?.decision ?? 'error', (deps.now() - start) / 1000));

    /** Decides, answers and logs one parsed review. */
    const answer = (review: AdmissionReviewIn, config: CompiledConfig, labels: NamespaceLabels, namespaceProblem: string | undefined): void => {
      const { request, apiVersion } = review;
      let decided: MutateSummary;
      let out: AdmissionReviewOut;
      try {
        const result = mutate(review, { config, namespaceLabels: labels, server: deps.server(), namespaceProblem, events: deps.recordEvent !== undefined });
        if (!result.ok) {
          deps.logger.warn({ uid: request.uid, problem: result.error }, 'rejected request: invalid object');
          sendError(res, 'INVALID_REVIEW', result.error);
          return;
        }
        decided = result.summary;
        out = result.review;
        if (result.event) deps.recordEvent?.(result.event);
      } catch (err) {
        // A bug, not bad input: fail closed like the API server would on a webhook error, and say so.
        decided = { decision: 'error', namespace: request.namespace ?? '', pod: '', profiles: [], reason: String(err) };
        deps.logger.error({ uid: request.uid, err }, 'admission failed');
        out = complete(apiVersion, request.uid, denied(500, `sidecar-injector internal error: ${(err as Error).message}`));
      }
      summary = decided;
      sendJson(res, 200, out);
      const ms = deps.now() - start;
      deps.logger.info(
        {
          uid: request.uid,
          namespace: decided.namespace,
          pod: decided.pod,
          decision: decided.decision,
          profiles: decided.profiles,
          reason: decided.reason,
          ...(namespaceProblem ? { namespaceProblem } : {}),
          durationMs: Math.round(ms * 1000) / 1000,
        },
        'admission',
      );
    };

    if (!req.is('application/json')) {
      deps.logger.warn({ contentType: req.headers['content-type'] ?? null }, 'rejected request: unsupported content type');
      sendError(res, 'UNSUPPORTED_MEDIA_TYPE', `got ${JSON.stringify(req.headers['content-type'] ?? null)}`);
      return;
    }
    void readJsonBody(req, MAX_BODY_BYTES).then((body) => {
      if (!body.ok) {
        deps.logger.warn({ code: body.code, problem: body.detail }, 'rejected request');
        sendError(res, body.code, body.detail);
        return;
      }
      const parsed = parseReview(body.value);
      if (!parsed.ok) {
        deps.logger.warn({ problem: parsed.error }, 'rejected request: invalid AdmissionReview');
        sendError(res, 'INVALID_REVIEW', parsed.error);
        return;
      }
      const review = parsed.review;
      const namespace = review.request.namespace ?? '';
      const config = deps.config();
      // Only a Pod CREATE outside the excluded namespaces can need namespace labels; a cache miss costs one bounded read.
      if (deps.lookupNamespace && deps.namespaceLabels(namespace) === undefined && isPodCreate(review.request) && !config.excludedNamespaces.has(namespace)) {
        return deps.lookupNamespace(namespace).then((found) => answer(review, config, () => found.labels, found.labels ? undefined : found.problem));
      }
      answer(review, config, deps.namespaceLabels, undefined);
    }).catch((err: unknown) => {
      // Nothing above should throw; if it does, answer and log rather than take the process down.
      deps.logger.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL');
    });
  });

  app.use((_req: Request, res: Response) => sendError(res, 'NOT_FOUND'));

  return app;
}
