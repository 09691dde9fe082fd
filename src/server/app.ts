/**
 * The HTTP application: routes only. Content type, size cap and decoding
 * (body.ts) here, then the pure pipeline (core/mutate.ts) decides. Listening, TLS and
 * shutdown live in listen.ts.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import { mutate, type MutateSummary, type NamespaceLabels } from '../core/mutate.js';
import { complete, denied, type AdmissionReviewOut } from '../core/response.js';
import { parseReview } from '../core/review.js';
import { readJsonBody } from './body.js';
import { httpError, type HttpErrorCode } from './errors.js';

export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface AppDeps {
  /** The config in force; read once per admission so a reload never splits one. */
  config: () => CompiledConfig;
  namespaceLabels: NamespaceLabels;
  logger: Logger;
  /** Monotonic clock in milliseconds. */
  now: () => number;
  /** False once shutdown has begun. */
  ready: () => boolean;
  /** Called once per request to /mutate when its answer is sent: the decision, or `error` for a bad request. */
  onAdmission?: (decision: MutateSummary['decision'], seconds: number) => void;
}

/** /healthz and /readyz, the same on the webhook and metrics ports. */
export function addHealthRoutes(app: express.Express, ready: () => boolean): void {
  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req: Request, res: Response) => {
    if (ready()) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'shutting down' });
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
  addHealthRoutes(app, deps.ready);

  app.post('/mutate', (req: Request, res: Response) => {
    const start = deps.now();
    let summary: MutateSummary | undefined;
    res.on('finish', () => deps.onAdmission?.(summary?.decision ?? 'error', (deps.now() - start) / 1000));

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
      const { request, apiVersion } = parsed.review;
      let answer: AdmissionReviewOut;
      try {
        const result = mutate(parsed.review, { config: deps.config(), namespaceLabels: deps.namespaceLabels });
        if (!result.ok) {
          deps.logger.warn({ uid: request.uid, problem: result.error }, 'rejected request: invalid object');
          sendError(res, 'INVALID_REVIEW', result.error);
          return;
        }
        summary = result.summary;
        answer = result.review;
      } catch (err) {
        // A bug, not bad input: fail closed like the API server would on a webhook error, and say so.
        summary = { decision: 'error', namespace: request.namespace ?? '', pod: '', profiles: [], reason: String(err) };
        deps.logger.error({ uid: request.uid, err }, 'admission failed');
        answer = complete(apiVersion, request.uid, denied(500, `sidecar-injector internal error: ${(err as Error).message}`));
      }
      sendJson(res, 200, answer);
      const ms = deps.now() - start;
      deps.logger.info(
        {
          uid: request.uid,
          namespace: summary.namespace,
          pod: summary.pod,
          decision: summary.decision,
          profiles: summary.profiles,
          reason: summary.reason,
          durationMs: Math.round(ms * 1000) / 1000,
        },
        'admission',
      );
    }).catch((err: unknown) => {
      // Nothing above should throw; if it does, answer and log rather than take the process down.
      deps.logger.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL');
    });
  });

  app.use((_req: Request, res: Response) => sendError(res, 'NOT_FOUND'));

  return app;
}
