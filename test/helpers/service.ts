/**
 * A Service on loopback for tests: a round-robin TCP relay, each new
 * connection to the next backend, as kube-proxy spreads connections. It adds
 * no delay of its own (TCP_NODELAY: a relay's Nagle against the client's
 * delayed ACK cost 40 ms a call) and a connection never outlives its peer.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface LoopbackService {
  port: number;
  close(): Promise<void>;
}

/** `backends()` is asked at each new connection: the ports that may take it now (none: refused). */
export async function startLoopbackService(backends: () => number[]): Promise<LoopbackService> {
  const open = new Set<Socket>();
  let next = 0;
  const server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    const ports = backends();
    if (ports.length === 0) return void client.destroy();
    const backend = connect(ports[next++ % ports.length]!, '127.0.0.1');
    client.setNoDelay(true);
    backend.setNoDelay(true);
    client.pipe(backend).pipe(client);
    const close = () => {
      client.destroy();
      backend.destroy();
    };
    for (const side of [client, backend]) {
      side.on('error', close);
      side.on('close', close);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
