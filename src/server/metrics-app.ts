/** The plain-HTTP metrics port: /metrics in Prometheus text format, plus the health routes. */
import express, { type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { addHealthRoutes, sendError } from './app.js';

export function createMetricsApp(registry: Registry, ready: () => boolean, notReady?: () => string | undefined): express.Express {
  const app = express();
  app.disable('x-powered-by');
  addHealthRoutes(app, ready, notReady);
  app.get('/metrics', (_req: Request, res: Response) => {
    void registry.metrics().then((text) => {
      res.type(registry.contentType).send(text);
    });
  });
  app.use((_req: Request, res: Response) => sendError(res, 'NOT_FOUND'));
  return app;
}
