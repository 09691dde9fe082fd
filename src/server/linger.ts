/**
 * Refusing a body that is still arriving (413) without losing the answer.
 *
 * A socket closed with unread input makes the kernel send a TCP RST; a client
 * still writing its body then gets EPIPE or ECONNRESET, and its stack may drop
 * our answer unread. Node's HTTP server closes that way after a
 * `Connection: close` answer (socket.destroySoon(): end, then destroy once
 * flushed). RFC 9112 §9.6 asks a server that closes early to keep reading
 * until the client closes or its answer has surely arrived; Go's net/http
 * answers a too-large body with `Connection: close`, then closeWriteAndWait
 * (server.go: flush, CloseWrite, wait rstAvoidanceDelay before the close).
 * We do the same, bounded: the answer and the FIN go out at once, the rest of
 * the body is read and thrown away (nothing is kept), and the socket is closed
 * when the body ends, or cut once LINGER_MAX_EXTRA_BYTES past the cap or
 * LINGER_MAX_MS have gone by, so an endless body or a stalled client cannot
 * hold it longer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Body bytes read and discarded beyond the cap before the connection is cut. */
export const LINGER_MAX_EXTRA_BYTES = 4 * 1024 * 1024;
/** How long after the refusal the rest of the body may take before the connection is cut. */
export const LINGER_MAX_MS = 5_000;

/**
 * Call before answering a request whose body is refused while `received`
 * bytes of it (of a `cap`) have been read: the answer carries
 * `Connection: close` and the connection lingers as above.
 */
export function closeAfterRefusal(req: IncomingMessage, res: ServerResponse, received: number, cap: number): void {
  res.setHeader('Connection', 'close');
  if (req.complete) return; // nothing unread: Node's own close is clean
  const socket = req.socket;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, LINGER_MAX_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  let read = received;
  req.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > cap + LINGER_MAX_EXTRA_BYTES) cut();
  });
  req.on('error', () => undefined); // a client cut off mid-body: expected here
  req.resume();
  // Node's server calls destroySoon() once a `Connection: close` answer is
  // written (resOnFinish in _http_server.js); there is no public hook for a
  // lingering close, so this socket's is replaced.
  socket.destroySoon = () => {
    socket.end(); // the answer, then TLS close_notify and FIN; reading goes on
    const close = () => (socket.writableFinished ? socket.destroy() : socket.once('finish', cut));
    if (req.complete) close();
    else req.once('end', close);
  };
}
