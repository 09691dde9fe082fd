/**
 * Certificates never surprise (SPEC 7): the serving certificate's notAfter
 * as a gauge, and a warning log from 30 days before expiry, at start and then
 * at most once a day (checked hourly and on every reload).
 */
import type { Logger } from 'pino';
import { certInfo } from '../tls/inspect.js';

export const WARN_BEFORE_MS = 30 * 86_400_000;
const DAY_MS = 86_400_000;

export interface ExpiryWatch {
  /** A certificate is now in force (start, reload). */
  inForce(certPem: Buffer | string): void;
  stop(): void;
}

export function watchExpiry(opts: { logger: Logger; gauge: (notAfter: Date) => void; now?: () => number; checkEveryMs?: number }): ExpiryWatch {
  const now = opts.now ?? Date.now;
  let notAfter: Date | undefined;
  let warnedAt = -Infinity;
  const check = () => {
    if (!notAfter) return;
    const left = notAfter.getTime() - now();
    if (left > WARN_BEFORE_MS || now() - warnedAt < DAY_MS) return;
    warnedAt = now();
    const days = Math.floor(left / DAY_MS);
    opts.logger.warn({ notAfter: notAfter.toISOString(), daysLeft: days }, left <= 0 ? 'serving certificate has expired' : `serving certificate expires in ${days} days`);
  };
  const timer = setInterval(check, opts.checkEveryMs ?? 3_600_000);
  timer.unref();
  return {
    inForce: (pem) => {
      try {
        notAfter = certInfo(pem).notAfter;
      } catch {
        return; // the pair was checked before; a certificate Node can use but not parse is not ours to judge
      }
      opts.gauge(notAfter);
      check();
    },
    stop: () => clearInterval(timer),
  };
}
