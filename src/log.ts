/**
 * The process logger: pino JSON on stdout. Created by the CLI and passed in,
 * never imported as a singleton. Lines are buffered (up to 4 KiB) and written
 * asynchronously, because a write syscall per admission is a measurable part
 * of its cost; flushLogs() runs before every exit so nothing is lost.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface ProcessLogger {
  logger: Logger;
  /** Writes out what is buffered, synchronously. */
  flushLogs(): void;
}

export function createLogger(level: string): ProcessLogger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
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
