/** The process logger: pino JSON on stdout. Created by the CLI and passed in, never imported as a singleton. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { name: 'sidecar-injector' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
