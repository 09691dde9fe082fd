/** Reading a certificate and key pair from disk, checked to belong together before use. */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

export type TlsLoadResult = { ok: true; pair: TlsPair } | { ok: false; error: string };

export async function loadTlsPair(certPath: string, keyPath: string): Promise<TlsLoadResult> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, error: `cannot read ${e.path ?? `${certPath} or ${keyPath}`}: ${e.code ?? e.message}` };
  }
  try {
    // Throws on unparsable PEM and on a key that does not match the certificate.
    createSecureContext({ cert, key });
  } catch (err) {
    return { ok: false, error: `${certPath} and ${keyPath} are not a usable pair: ${(err as Error).message}` };
  }
  return { ok: true, pair: { cert, key } };
}
