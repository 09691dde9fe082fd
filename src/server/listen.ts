/** Listeners around the apps: HTTPS for the webhook (TLS 1.2+, certificate swap), plain HTTP for metrics; timeouts and drain. */
import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsPair } from '../tls/load.js';

/** kube-apiserver waits at most 30 s for a webhook; a stalled client must not hold a socket longer. */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;

export interface Timeouts {
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface Listener {
  server: HttpServer;
  port: number;
  /**
   * Stops accepting, lets in-flight requests finish, closes idle keep-alive
   * connections as they become idle, and cuts whatever is left at `deadlineMs`.
   */
  drain(deadlineMs: number): Promise<void>;
}

export interface HttpsListener extends Listener {
  /** New connections get this pair; open ones keep theirs. */
  setTls(pair: TlsPair): void;
}

function serverOptions(t: Timeouts) {
  const headersTimeout = t.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const requestTimeout = t.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  // Node enforces both only when it sweeps its connections; sweep often enough to honour them.
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4)));
  return { headersTimeout, requestTimeout, connectionsCheckingInterval };
}

async function start(server: HttpServer, port: number, host: string): Promise<Listener> {
  server.listen(port, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    drain: (deadlineMs) =>
      new Promise<void>((resolve) => {
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        const cut = setTimeout(() => server.closeAllConnections(), deadlineMs);
        server.close(() => {
          clearInterval(sweep);
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

export async function listenHttps(app: RequestListener, opts: { port: number; host: string; tls: TlsPair } & Timeouts): Promise<HttpsListener> {
  const server = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', ...serverOptions(opts) }, app);
  const listener = await start(server, opts.port, opts.host);
  return {
    ...listener,
    setTls: (pair) => server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' }),
  };
}

export function listenHttp(app: RequestListener, opts: { port: number; host: string } & Timeouts): Promise<Listener> {
  return start(createHttpServer(serverOptions(opts), app), opts.port, opts.host);
}
