/** Reading a certificate and key pair from disk, checked to belong together before use. */
import { createSecureContext } from 'node:tls';
import { readOne, type FileRead } from '../ops/watch.js';

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

export type TlsLoadResult = { ok: true; pair: TlsPair } | { ok: false; error: string };

/** The pair from files already read (the watcher's bytes: what was compared is what is served). */
export function tlsPairOf(certFile: FileRead, keyFile: FileRead): TlsLoadResult {
  if ('error' in certFile) return { ok: false, error: `cannot read ${certFile.path}: ${certFile.error}` };
  if ('error' in keyFile) return { ok: false, error: `cannot read ${keyFile.path}: ${keyFile.error}` };
  const cert = certFile.bytes;
  const key = keyFile.bytes;
  try {
    // Throws on unparsable PEM and on a key that does not match the certificate.
    createSecureContext({ cert, key });
  } catch (err) {
    return { ok: false, error: `${certFile.path} and ${keyFile.path} are not a usable pair: ${(err as Error).message}` };
  }
  return { ok: true, pair: { cert, key } };
}

export async function loadTlsPair(certPath: string, keyPath: string): Promise<TlsLoadResult> {
  const [cert, key] = await Promise.all([readOne(certPath), readOne(keyPath)]);
  return tlsPairOf(cert, key);
}
