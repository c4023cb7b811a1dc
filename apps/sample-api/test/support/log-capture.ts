import { createLogger, type Logger } from '@flowforge/observability';

/** A real logger whose lines are kept, parsed, for a test to read. */
export function captureLogs(): {
  readonly logger: Logger;
  /** Every line written so far, parsed. */
  readonly lines: () => Record<string, unknown>[];
} {
  const chunks: string[] = [];
  return {
    logger: createLogger({ destination: { write: (chunk: string) => void chunks.push(chunk) } }),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
