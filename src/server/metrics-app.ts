/** The plain-HTTP metrics port: /metrics in Prometheus text format, plus the health routes. */
import express, { type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { addHealthRoutes } from './app.js';
import { httpError } from './errors.js';

export function createMetricsApp(registry: Registry, ready: () => boolean): express.Express {
  const app = express();
  app.disable('x-powered-by');
  addHealthRoutes(app, ready);
  app.get('/metrics', (_req: Request, res: Response) => {
    void registry.metrics().then((text) => {
      res.type(registry.contentType).send(text);
    });
  });
  app.use((_req: Request, res: Response) => {
    const { status, body } = httpError('NOT_FOUND');
    res.status(status).json(body);
  });
  return app;
}
