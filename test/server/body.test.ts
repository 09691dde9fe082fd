/**
 * A refused body is still answered: a client that writes a body over the cap
 * without waiting gets its 413 (the server reads and discards the rest,
 * bounded in bytes and time, before it closes), on raw TLS sockets, under
 * load. Normal requests keep their keep-alive connections.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:https';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import type { MutateSummary } from '../../src/core/mutate.js';
import { createApp, MAX_BODY_BYTES } from '../../src/server/app.js';
import { LINGER_MAX_EXTRA_BYTES, LINGER_MAX_MS } from '../../src/server/linger.js';
import { listenHttps, type HttpsListener } from '../../src/server/listen.js';
import { loadTlsPair } from '../../src/tls/load.js';
import { testConfig } from '../helpers/configs.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';
import { httpsRequest, testCertificates } from '../helpers/server.js';

const MiB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** What the server saw of one connection when it closed it, keyed by the client's port. */
interface ServerSide {
  closedAt: number;
  bytesRead: number;
}

let listener: HttpsListener;
let ca: string;
let url: string;
const logs: Record<string, unknown>[] = [];
const admissions: MutateSummary['decision'][] = [];
const serverSockets = new Map<number, Promise<ServerSide>>();

beforeAll(async () => {
  const { dir, set } = await testCertificates();
  const tls = await loadTlsPair(join(dir, 'tls.crt'), join(dir, 'tls.key'));
  if (!tls.ok) throw new Error(tls.error);
  ca = set.caCert;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const config = testConfig();
  const app = createApp({
    config: () => config,
    namespaceLabels: () => undefined,
    server: () => ({ nativeSidecars: true }),
    logger: pino({ level: 'info' }, sink),
    now: () => performance.now(),
    ready: () => true,
    onAdmission: (decision) => admissions.push(decision),
  });
  listener = await listenHttps(app, { port: 0, host: '127.0.0.1', tls: tls.pair });
  url = `https://localhost:${listener.port}`;
  listener.server.on('secureConnection', (socket: TLSSocket) => {
    serverSockets.set(
      socket.remotePort!,
      new Promise((resolve) => socket.once('close', () => resolve({ closedAt: performance.now(), bytesRead: socket.bytesRead }))),
    );
  });
});
afterAll(async () => {
  await listener.drain(1000);
});
beforeEach(() => {
  logs.length = 0;
  admissions.length = 0;
});

/** Resolves with `promise`, or fails after `ms` saying what did not happen: a bound, not a delay. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** A client on a raw TLS socket: writes what it is told, reads and parses one HTTP/1.1 answer. */
class RawClient {
  readonly tcp: Socket;
  readonly socket: TLSSocket;
  status: number | undefined;
  headers = new Map<string, string>();
  body: string | undefined;
  answeredAt: number | undefined;
  closedAt: number | undefined;
  /** An error code (EPIPE, ECONNRESET…), and whether the whole answer had arrived before it. */
  error: { code: string; answered: boolean } | undefined;
  written = 0;
  localPort = 0;
  readonly connected: Promise<void>;
  answered!: Promise<void>;
  readonly closed: Promise<void>;
  private received = Buffer.alloc(0);
  private onAnswer: () => void = () => undefined;

  /** `allowHalfOpen`: keep writing after the server's FIN, as a misbehaving client would. */
  constructor(allowHalfOpen = false) {
    this.tcp = createConnection({ host: '127.0.0.1', port: listener.port, allowHalfOpen });
    this.socket = connect({ socket: this.tcp, ca, servername: 'localhost' });
    this.connected = new Promise((resolve) =>
      this.socket.once('secureConnect', () => {
        this.localPort = this.tcp.localPort!;
        resolve();
      }),
    );
    this.reset();
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.closedAt = performance.now();
        this.onAnswer(); // no answer is coming now; the test says what was missing
        resolve();
      }),
    );
    this.socket.on('error', (err) => this.failed(err));
    this.socket.on('data', (data: Buffer) => {
      this.received = Buffer.concat([this.received, data]);
      if (this.body === undefined && this.parse()) {
        this.answeredAt = performance.now();
        this.onAnswer();
      }
    });
  }

  private failed(err: NodeJS.ErrnoException): void {
    this.error ??= { code: err.code ?? err.message, answered: this.body !== undefined };
  }

  /** Forgets the answer read, to read the next one on the same connection. */
  reset(): void {
    this.received = Buffer.alloc(0);
    this.status = this.body = this.answeredAt = undefined;
    this.headers = new Map();
    this.answered = new Promise((resolve) => (this.onAnswer = resolve));
  }

  /** True once the status line, the headers and Content-Length bytes of body are in. */
  private parse(): boolean {
    const end = this.received.indexOf('\r\n\r\n');
    if (end < 0) return false;
    const [statusLine, ...lines] = this.received.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '');
    if (!m) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(statusLine)}`);
    for (const line of lines) {
      const i = line.indexOf(':');
      this.headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    const length = Number(this.headers.get('content-length'));
    if (this.received.length < end + 4 + length) return false;
    this.status = Number(m[1]);
    this.body = this.received.subarray(end + 4, end + 4 + length).toString('utf8');
    return true;
  }

  /** A write that fails (EPIPE, ECONNRESET) counts as the connection's error, as it would for a client that stops there. */
  write(data: string | Buffer, done?: () => void): boolean {
    this.written += data.length;
    return this.socket.write(data, (err) => {
      if (err) this.failed(err);
      done?.();
    });
  }

  head(framing: string, contentType = 'application/json'): void {
    this.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${contentType}\r\n${framing}\r\n\r\n`);
  }

  /**
   * Writes `size` bytes of body at once, without waiting for anything (Node
   * buffers what the socket does not take). `readAfter`: read nothing until
   * the kernel has taken all of it, as a client that sends its whole request
   * before it reads does: a write that fails then loses the answer.
   */
  writeBody(size: number, chunked = false, readAfter = false): void {
    if (readAfter) this.socket.pause();
    for (let sent = 0; sent < size; sent += CHUNK.length) {
      if (chunked) this.write(`${CHUNK.length.toString(16)}\r\n`);
      this.write(CHUNK);
      if (chunked) this.write('\r\n');
    }
    this.write(chunked ? '0\r\n\r\n' : '', () => {
      if (readAfter) this.socket.resume();
    });
  }

  /** Keeps writing body for as long as the socket takes it. */
  writeForever(chunked = false): void {
    const pump = () => {
      while (!this.socket.destroyed && this.socket.writable) {
        if (chunked) this.write(`${CHUNK.length.toString(16)}\r\n`);
        const more = this.write(CHUNK);
        if (chunked) this.write('\r\n');
        if (!more) return;
      }
    };
    this.socket.on('drain', pump);
    pump();
  }

  serverSide(): Promise<ServerSide> {
    const side = serverSockets.get(this.localPort);
    if (!side) throw new Error('the server never saw this connection');
    return side;
  }
}

function expect413(c: RawClient): void {
  expect({ status: c.status, error: c.error?.answered === false ? c.error.code : undefined }).toEqual({ status: 413, error: undefined });
  expect(c.headers.get('connection')).toBe('close');
  expect(JSON.parse(c.body!)).toMatchObject({ code: 'BODY_TOO_LARGE' });
}

/** One refused admission is one `error` in the metric and one log line. */
function expectCountedOnce(refused: number): void {
  expect(admissions.filter((d) => d === 'error')).toHaveLength(refused);
  expect(logs.filter((l) => l.msg === 'rejected request' && l.code === 'BODY_TOO_LARGE')).toHaveLength(refused);
}

/** Admissions over a keep-alive agent, one after another, until `stopped()`; the statuses and Connection headers. */
async function admitUntil(stopped: () => boolean): Promise<{ status: number; connection: string | undefined }[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const results: { status: number; connection: string | undefined }[] = [];
  const body = JSON.stringify(admissionReview(apiserverPod()));
  try {
    while (!stopped()) {
      results.push(
        await new Promise((resolve, reject) => {
          const req = request(`${url}/mutate`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
          });
          req.on('error', reject);
          req.end(body);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return results;
}

/** A process that keeps a core busy for as long as the test runs. */
function busyProcess(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

describe('a body over the cap is answered while the client is still sending it', () => {
  it.each([
    ['Content-Length', 'reading as they write', false, false],
    ['chunked', 'reading as they write', true, false],
    ['Content-Length', 'reading once all is written', false, true],
    ['chunked', 'reading once all is written', true, true],
  ])('20 raw TLS clients writing 4 MiB at once (%s, %s), under load, all read a complete 413', async (_framing, _reading, chunked, readAfter) => {
    const busy = busyProcess();
    let stopped = false;
    let load: Promise<{ status: number; connection: string | undefined }[]>[] = [];
    try {
      const clients = Array.from({ length: 20 }, () => new RawClient());
      const done = Promise.all(clients.map((c) => c.closed));
      void done.then(() => (stopped = true));
      load = [admitUntil(() => stopped), admitUntil(() => stopped)];
      await Promise.all(
        clients.map(async (c) => {
          await c.connected;
          c.head(chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${4 * MiB}`);
          c.writeBody(4 * MiB, chunked, readAfter);
        }),
      );
      await within(done, 25_000, 'the refused connections closed');
      for (const c of clients) expect413(c);
      const normal = (await Promise.all(load)).flat();
      expect(normal.length).toBeGreaterThan(0);
      // Nothing changed for them: answered, and the connection kept.
      expect(normal.every((r) => r.status === 200 && r.connection === 'keep-alive')).toBe(true);
      expectCountedOnce(20);
      expect(admissions.filter((d) => d === 'injected')).toHaveLength(normal.length);
    } finally {
      stopped = true;
      busy.kill();
      await Promise.allSettled(load);
    }
  });

  it.each([
    ['a declared Content-Length', false],
    ['chunked', true],
  ])('a client that never stops sending (%s) is cut off past the byte bound; the server stays healthy', async (_framing, chunked) => {
    const c = new RawClient(true);
    await c.connected;
    c.head(chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${1e12}`);
    c.writeForever(chunked);
    await within(c.closed, 20_000, 'the endless sender was cut off');
    expect413(c);
    const server = await c.serverSide();
    // Cut by the byte bound: past it, and not much more (a chunk in flight, the headers).
    expect(server.bytesRead).toBeGreaterThan(MAX_BODY_BYTES + LINGER_MAX_EXTRA_BYTES);
    expect(server.bytesRead).toBeLessThan(MAX_BODY_BYTES + LINGER_MAX_EXTRA_BYTES + MiB);
    expect(c.written).toBeGreaterThan(server.bytesRead);
    expectCountedOnce(1);
    expect((await httpsRequest(`${url}/healthz`, ca)).status).toBe(200);
    const ok = await httpsRequest(`${url}/mutate`, ca, {
      method: 'POST',
      body: JSON.stringify(admissionReview(apiserverPod())),
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.status).toBe(200);
  });

  it('a client that stalls, or trickles, after part of the body gets the 413 and is closed within the time bound', async () => {
    const stalled = new RawClient(true);
    const trickling = new RawClient(true);
    await Promise.all([stalled.connected, trickling.connected]);
    for (const c of [stalled, trickling]) {
      c.head(`Content-Length: ${4 * MiB}`);
      c.writeBody(MiB);
    }
    await within(Promise.all([stalled.answered, trickling.answered]), 10_000, 'the 413s arrived');
    expect413(stalled);
    expect413(trickling);
    // A slow loris: a few bytes at a time, never finishing, until the connection goes.
    const drip = setInterval(() => {
      if (trickling.socket.writable) trickling.write('xxxx');
    }, 50);
    try {
      const bound = LINGER_MAX_MS + 10_000; // generous: the point is that it closes, long before the 30 s request timeout
      const [stalledServer, tricklingServer] = await within(Promise.all([stalled.serverSide(), trickling.serverSide()]), bound, 'the server closed both');
      await within(trickling.closed, bound, 'the slow loris saw its connection closed');
      expect(stalledServer.closedAt - stalled.answeredAt!).toBeLessThan(bound);
      expect(tricklingServer.closedAt - trickling.answeredAt!).toBeLessThan(bound);
      expect(trickling.error?.answered).not.toBe(false);
    } finally {
      clearInterval(drip);
      stalled.socket.destroy();
    }
    expectCountedOnce(2);
  });

  it('a body refused for its content type (415) before it is read is answered the same way', async () => {
    const clients = Array.from({ length: 5 }, () => new RawClient());
    await Promise.all(
      clients.map(async (c) => {
        await c.connected;
        c.head(`Content-Length: ${4 * MiB}`, 'text/plain');
        c.writeBody(4 * MiB, false, true);
      }),
    );
    await within(Promise.all(clients.map((c) => c.closed)), 25_000, 'the refused connections closed');
    for (const c of clients) {
      expect({ status: c.status, error: c.error?.answered === false ? c.error.code : undefined }).toEqual({ status: 415, error: undefined });
      expect(c.headers.get('connection')).toBe('close');
    }
  });

  it('a request under the cap still gets its answer on a keep-alive connection it can reuse', async () => {
    const c = new RawClient();
    await c.connected;
    const body = JSON.stringify(admissionReview(apiserverPod()));
    const post = `POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    c.write(post);
    await within(c.answered, 10_000, 'the first answer');
    expect(c.status).toBe(200);
    expect(c.headers.get('connection')).toBe('keep-alive');
    c.reset();
    c.write(post);
    await within(c.answered, 10_000, 'the second answer on the same connection');
    expect(c.status).toBe(200);
    expect(c.closedAt).toBeUndefined();
    c.socket.end();
    await within(c.closed, 10_000, 'the client closed');
    expect(admissions).toEqual(['injected', 'injected']);
  });
});
