/** The HTTPS listener around the app: TLS 1.2+, timeouts, certificate swap, close. */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';
import type { TlsPair } from '../tls/load.js';

/** kube-apiserver waits at most 30 s for a webhook; a stalled client must not hold a socket longer. */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;

export interface ListenOptions {
  port: number;
  host: string;
  tls: TlsPair;
}

export interface HttpsListener {
  server: Server;
  port: number;
  /** New connections get this pair; open ones keep theirs. */
  setTls(pair: TlsPair): void;
  close(): Promise<void>;
}

export async function listenHttps(app: RequestListener, opts: ListenOptions): Promise<HttpsListener> {
  const server = createServer(
    {
      cert: opts.tls.cert,
      key: opts.tls.key,
      minVersion: 'TLSv1.2',
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
    },
    app,
  );
  server.listen(opts.port, opts.host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    setTls: (pair) => server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
