/**
 * The process logger: pino JSON on stdout. Created by the CLI and passed in,
 * never imported as a singleton. Writes are asynchronous: a line goes out at
 * once when the stream is idle, and lines that arrive while a write is under
 * way are batched into the next one, so under load there is no write syscall
 * per admission. flushLogs() runs before every exit so nothing is lost.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface ProcessLogger {
  logger: Logger;
  /** Writes out what is buffered, synchronously. */
  flushLogs(): void;
}

export function createLogger(level: string): ProcessLogger {
  const destination = pino.destination({ dest: 1, sync: false });
  const logger = pino({ level, base: { name: 'sidecar-injector' } }, destination);
  return {
    logger,
    flushLogs: () => {
      try {
        destination.flushSync();
      } catch {
        // Nothing buffered yet (the destination is not ready): nothing to lose.
      }
    },
  };
}
