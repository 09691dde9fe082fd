/**
 * Reading a JSON request body: size cap, charset, decode. Written out rather
 * than using express.json() because this is the hot path of every pod
 * creation and body-parser's generality (encodings, inflation, charsets)
 * costs more than the whole injection (see README, Performance).
 */
import type { IncomingMessage } from 'node:http';
import type { HttpErrorCode } from './errors.js';

/** `received`: with BODY_TOO_LARGE, the body bytes read when it was refused (the rest is still arriving). */
export type BodyResult = { ok: true; value: unknown } | { ok: false; code: HttpErrorCode; detail?: string; received?: number };

const UTF8 = /^utf-?8$/i;

/** The charset parameter of a Content-Type, lower-cased, or undefined. */
function charsetOf(contentType: string): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  return m?.[1]?.toLowerCase();
}

/**
 * What express's `req.is('application/json')` accepted (type-is 2): a request that has a body
 * (Transfer-Encoding, or a numeric Content-Length) and whose media type, before any parameter,
 * without spaces or tabs around it and in any case, is application/json.
 */
export function isJsonRequest(req: IncomingMessage): boolean {
  const { headers } = req;
  if (headers['transfer-encoding'] === undefined && Number.isNaN(Number(headers['content-length']))) return false;
  const value = headers['content-type'];
  if (!value) return false;
  const semicolon = value.indexOf(';');
  return (semicolon === -1 ? value : value.slice(0, semicolon)).replace(OWS_AROUND, '').toLowerCase() === 'application/json';
}

/** Optional whitespace (RFC 9110 5.6.3: spaces and tabs) at either end. */
const OWS_AROUND = /^[ \t]+|[ \t]+$/g;

export function readJsonBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const charset = charsetOf(req.headers['content-type'] ?? '');
  if (charset !== undefined && !UTF8.test(charset)) {
    return Promise.resolve({ ok: false, code: 'UNSUPPORTED_MEDIA_TYPE', detail: `charset "${charset}" (only utf-8)` });
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding !== 'identity') {
    return Promise.resolve({ ok: false, code: 'UNSUPPORTED_MEDIA_TYPE', detail: `Content-Encoding "${encoding}"` });
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    req.resume(); // discard, so the connection can answer
    return Promise.resolve({ ok: false, code: 'BODY_TOO_LARGE', received: 0 });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0; // what is left of the body is discarded, not kept
        finish({ ok: false, code: 'BODY_TOO_LARGE', received: size });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      const text = (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)).toString('utf8');
      try {
        finish({ ok: true, value: JSON.parse(text) as unknown });
      } catch (err) {
        finish({ ok: false, code: 'INVALID_JSON', detail: (err as Error).message });
      }
    });
    req.on('error', (err) => finish({ ok: false, code: 'INVALID_JSON', detail: `reading the body failed: ${err.message}` }));
  });
}
