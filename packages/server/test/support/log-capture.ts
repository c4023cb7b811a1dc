import { createLogger, type Logger } from '@flowforge/observability';

/** A logger whose lines are kept (as @flowforge/observability's own tests keep them), and whose flushes are counted. */
export function capturedLogger(): {
  readonly logger: Logger;
  /** Every line written so far, parsed. */
  readonly lines: () => Record<string, unknown>[];
  /** How many times the logger was flushed. */
  readonly flushes: () => number;
} {
  const chunks: string[] = [];
  let flushes = 0;
  const destination = {
    write: (chunk: string) => void chunks.push(chunk),
    // pino's logger.flush(callback) calls the destination's flush when it has one.
    flush: (callback: (error?: Error) => void) => {
      flushes += 1;
      callback();
    },
  };
  return {
    logger: createLogger({ level: 'debug', destination }),
    flushes: () => flushes,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
