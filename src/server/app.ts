/**
 * The HTTP application: routes only. Size cap, content type and decoding
 * here, then the pure pipeline (core/mutate.ts) decides. Listening, TLS and
 * shutdown live in listen.ts.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CompiledConfig } from '../core/config.js';
import { mutate, type MutateSummary, type NamespaceLabels } from '../core/mutate.js';
import { complete, denied } from '../core/response.js';
import { parseReview } from '../core/review.js';
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

function sendError(res: Response, code: HttpErrorCode, detail?: string): void {
  const { status, body } = httpError(code, detail);
  res.status(status).json(body);
}

interface BodyParserError extends Error {
  type?: string;
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

  const parseJson = express.json({ limit: MAX_BODY_BYTES, type: () => true, strict: false });

  app.post(
    '/mutate',
    (_req: Request, res: Response, next: NextFunction) => {
      const start = deps.now();
      res.locals.start = start;
      res.on('finish', () => {
        const summary = res.locals.summary as MutateSummary | undefined;
        deps.onAdmission?.(summary?.decision ?? 'error', (deps.now() - start) / 1000);
      });
      next();
    },
    (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/json')) {
        deps.logger.warn({ contentType: req.headers['content-type'] ?? null }, 'rejected request: unsupported content type');
        sendError(res, 'UNSUPPORTED_MEDIA_TYPE', `got ${JSON.stringify(req.headers['content-type'] ?? null)}`);
        return;
      }
      parseJson(req, res, next);
    },
    (req: Request, res: Response) => {
      const start = res.locals.start as number;
      const parsed = parseReview(req.body);
      if (!parsed.ok) {
        deps.logger.warn({ problem: parsed.error }, 'rejected request: invalid AdmissionReview');
        sendError(res, 'INVALID_REVIEW', parsed.error);
        return;
      }
      const { request, apiVersion } = parsed.review;
      const log = deps.logger.child({ uid: request.uid });
      let summary: MutateSummary;
      try {
        const result = mutate(parsed.review, { config: deps.config(), namespaceLabels: deps.namespaceLabels });
        if (!result.ok) {
          log.warn({ problem: result.error }, 'rejected request: invalid object');
          sendError(res, 'INVALID_REVIEW', result.error);
          return;
        }
        summary = result.summary;
        res.locals.summary = summary;
        res.json(result.review);
      } catch (err) {
        // A bug, not bad input: fail closed like the API server would on a webhook error, and say so.
        summary = { decision: 'error', namespace: request.namespace ?? '', pod: '', profiles: [], reason: String(err) };
        res.locals.summary = summary;
        log.error({ err }, 'admission failed');
        res.json(complete(apiVersion, request.uid, denied(500, `sidecar-injector internal error: ${(err as Error).message}`)));
      }
      const ms = deps.now() - start;
      log.info(
        {
          namespace: summary.namespace,
          pod: summary.pod,
          decision: summary.decision,
          profiles: summary.profiles,
          reason: summary.reason,
          durationMs: Math.round(ms * 1000) / 1000,
        },
        'admission',
      );
    },
  );

  app.use((_req: Request, res: Response) => sendError(res, 'NOT_FOUND'));

  // Errors from the body parser arrive here: map them to our catalogue, never a 500 page.
  app.use((err: BodyParserError, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    let code: HttpErrorCode;
    switch (err.type) {
      case 'entity.too.large':
        code = 'BODY_TOO_LARGE';
        break;
      case 'encoding.unsupported':
      case 'charset.unsupported':
        code = 'UNSUPPORTED_MEDIA_TYPE';
        break;
      default:
        code = 'INVALID_JSON';
    }
    deps.logger.warn({ err: { type: err.type, message: err.message } }, 'rejected request');
    sendError(res, code, code === 'INVALID_JSON' ? err.message : undefined);
  });

  return app;
}
