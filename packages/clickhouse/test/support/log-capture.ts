import { createLogger, type Logger } from '@flowforge/observability';

/** A real logger whose lines are parsed into `lines`, for asserting what was logged. */
export function logCapture(level: 'debug' | 'info' = 'debug'): {
  lines: Record<string, unknown>[];
  logger: Logger;
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level,
    destination: {
      write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { lines, logger };
}
